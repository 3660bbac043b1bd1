"""Which of a document's files go to Business Central, and under what attachment names.

BC's ``fileName`` holds at most 250 characters; a name is made safe with core's naming rules
(no path separators, no device names such as ``nul``, no control characters), keeps its
extension (or gets one from the media type, so BC shows the right icon and opens it), and two
files that would end up with one name are told apart (`` (2)``). BC stores files up to 350 MB;
an empty file cannot be told from an upload cut short (``byteSize`` 0), so it is not sent either.
Files BC does not take are named in the delivery's message, not treated as an error.
"""

from __future__ import annotations

import mimetypes
import re

from invoicesync import FileRef, FileRole
from invoicesync.naming import NameRules, safe_segment, with_suffix_number

#: BC's Document Attachment "File Name" is Text[250].
MAX_FILE_NAME = 250
#: BC online's documented maximum upload size.
MAX_UPLOAD_BYTES = 350 * 1024 * 1024
_RULES = NameRules(max_bytes=MAX_FILE_NAME)  # bytes ≤ characters, so never over 250 characters
_EXTENSION = re.compile(r"^[A-Za-z0-9]{1,10}$")
#: The usual extension of the media types invoices come in (``mimetypes`` picks odd ones: .xsl for XML).
_USUAL = {"application/pdf": ".pdf", "application/xml": ".xml", "text/xml": ".xml", "image/jpeg": ".jpg",
          "image/png": ".png", "image/tiff": ".tif", "text/plain": ".txt", "application/zip": ".zip",
          "application/json": ".json", "text/html": ".html", "application/octet-stream": ".bin"}


def has_extension(name: str) -> bool:
    stem, dot, ext = name.rpartition(".")
    return bool(dot and stem.strip(". ") and _EXTENSION.match(ext))


def attachment_name(file: FileRef) -> str:
    name = file.name.strip()
    if not has_extension(name):
        media_type = file.media_type.split(";")[0].strip().lower()
        guessed = _USUAL.get(media_type) or mimetypes.guess_extension(media_type, strict=False)
        if guessed:
            name = f"{name}{guessed}"
    # A leading dot hides a file on most systems, and "../" pieces are never part of a name.
    return safe_segment(safe_segment(name, _RULES).lstrip(". "), _RULES)


def attachment_names(files: list[FileRef]) -> dict[FileRef, str]:
    """Each file's attachment name, unique within the list (later ones get " (2)", " (3)"…)."""
    names: dict[FileRef, str] = {}
    taken: set[str] = set()
    for file in files:
        name = attachment_name(file)
        n = 2
        while name.casefold() in taken:
            candidate = with_suffix_number(attachment_name(file), n)
            name = candidate if len(candidate) <= MAX_FILE_NAME else safe_segment(candidate, _RULES)
            n += 1
        taken.add(name.casefold())
        names[file] = name
    return names


def refusal(file: FileRef) -> str | None:
    """Why BC would not take this file, or ``None``."""
    if file.size == 0:
        return "empty file"
    if file.size > MAX_UPLOAD_BYTES:
        return f"{file.size / 1024 / 1024:.0f} MB, over Business Central's 350 MB limit"
    return None


def choose(document_files: list[FileRef], wanted: list[FileRef], *, attach_ubl: bool) -> tuple[list[FileRef],
                                                                                                list[str]]:
    """The files to attach (in the document's order) and, in words, the ones BC will not take."""
    files = wanted or document_files
    if not attach_ubl:
        files = [f for f in files if f.role is not FileRole.UBL]
    accepted, refused = [], []
    for file in files:
        reason = refusal(file)
        if reason is None:
            accepted.append(file)
        else:
            refused.append(f"{file.name} ({reason})")
    return accepted, refused
