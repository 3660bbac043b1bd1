"""Dropbox paths for documents: the template rendered with names Dropbox accepts.

Dropbox refuses ``/`` and ``\\`` in names and advises against ``< > : " | ? *`` and a trailing
dot or space (they break the desktop apps on Windows), so all of those are replaced. Names are
NFC-normalised (Dropbox compares paths NFC-normalised and case-insensitively) and kept under 255
bytes; the whole path is kept under Dropbox's 260-character guidance, where an emoji counts 2.
"""

from __future__ import annotations

import unicodedata

from invoicesync import Document, DocumentError
from invoicesync.naming import NameRules, render_path

DROPBOX_RULES = NameRules(max_bytes=255, forbidden='<>:"/\\|?*')
MAX_PATH_UNITS = 260


def _units(text: str) -> int:
    """Length as Dropbox counts it: UTF-16 code units (so characters beyond the BMP count 2)."""
    return len(text.encode("utf-16-le")) // 2


def fit_path(path: str, document_id: str = "") -> str:
    """Shorten the file name's stem so the whole path fits the length guidance."""
    excess = _units(path) - MAX_PATH_UNITS
    if excess <= 0:
        return path
    head, _, name = path.rpartition("/")
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    keep = len(stem)
    while keep > 0 and _units(stem[:keep]) > _units(stem) - excess:
        keep -= 1
    if keep < 8:
        raise DocumentError(f"the Dropbox path {path!r} is too long even with a short file name; "
                            "use a shorter template", document=document_id, field="template")
    short = stem[:keep].rstrip(". ")
    return f"{head}/{short}{'.' + ext if dot else ''}"


def document_path(template: str, document: Document, *, ext: str) -> str:
    """The absolute Dropbox path of ``document``'s main file."""
    relative = render_path(template.lstrip("/"), document, ext=ext, rules=DROPBOX_RULES)
    return fit_path("/" + relative, document.id)


def path_key(path: str) -> str:
    """How Dropbox compares paths: NFC-normalised and case-insensitively (``path_lower``)."""
    return unicodedata.normalize("NFC", path).lower()
