"""Path templates and safe file names, shared by every target.

A template such as ``{company}/{year}/{direction}/{date}_{counterparty}_{number}.pdf`` is
rendered field by field; each field's value is made safe on its own, so a counterparty called
``../../etc`` or ``A/B Ltd`` can never add a folder or climb out of the root.
"""

from __future__ import annotations

import functools
import mimetypes
import re
import string
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError
from .models import Document, FileRef, FileRole

DEFAULT_TEMPLATE = "{company}/{year}/{direction}/{date}_{counterparty}_{number}.{ext}"

FIELDS = (
    "company", "company_id", "year", "month", "date", "direction", "kind",
    "counterparty", "number", "id", "ext", "currency",
)

_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
_CONTROL = "".join(map(chr, [*range(0x20), 0x7F]))
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class NameRules:
    """What a target accepts in one path segment."""

    max_bytes: int = 255
    forbidden: str = '<>:"/\\|?*'
    reserved: frozenset[str] = frozenset(_WINDOWS_RESERVED)
    replacement: str = "_"


LOCAL_RULES = NameRules()


def safe_segment(value: str, rules: NameRules = LOCAL_RULES) -> str:
    """Make ``value`` one safe path segment: NFC, no separators or reserved characters, no
    trailing dot or space, not ``.``/``..``, not a reserved device name, at most ``max_bytes``
    (UTF-8) with the extension kept."""
    text = unicodedata.normalize("NFC", value).translate(_replacements(rules))
    text = _SPACES.sub(" ", text).strip().rstrip(". ")
    if text in {"", ".", ".."}:
        text = rules.replacement
    stem, dot, _ext = text.rpartition(".")
    if stem.upper() in rules.reserved or (not dot and text.upper() in rules.reserved):
        text = rules.replacement + text
    return _truncate(text, rules.max_bytes)


@functools.cache
def _replacements(rules: NameRules) -> dict[int, str]:
    """Control characters, separators and the characters ``rules`` forbid, each to the replacement
    (one ``str.translate`` per segment: a target path renders a dozen segments per document)."""
    return {ord(ch): rules.replacement for ch in _CONTROL + rules.forbidden + "/\\"}


def _truncate(text: str, max_bytes: int) -> str:
    if len(text.encode()) <= max_bytes:
        return text
    stem, dot, ext = text.rpartition(".")
    if not dot or len(ext) > 16:
        stem, ext = text, ""
    suffix = f".{ext}" if ext else ""
    budget = max_bytes - len(suffix.encode())
    cut = stem.encode()[:budget].decode(errors="ignore").rstrip(". ")
    return cut + suffix


class _StrictFormatter(string.Formatter):
    """Only plain field names: no ``{a.b}`` attribute or ``{a[0]}`` index access into objects."""

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> Any:
        if not re.fullmatch(r"[a-z_]+", field_name):
            raise ConfigError(f"template field {{{field_name}}} is not allowed; use one of {', '.join(FIELDS)}")
        if field_name not in kwargs:
            raise ConfigError(f"unknown template field {{{field_name}}}; use one of {', '.join(FIELDS)}")
        return kwargs[field_name], field_name


def template_fields(document: Document, ext: str = "pdf") -> dict[str, Any]:
    issue = document.issue_date
    return {
        "company": document.company.name or document.company.id,
        "company_id": document.company.id,
        "year": f"{issue:%Y}" if issue else "undated",
        "month": f"{issue:%m}" if issue else "00",
        "date": issue.isoformat() if issue else "undated",
        "direction": document.direction.value,
        "kind": document.kind.value,
        "counterparty": document.counterparty.name or "unknown",
        "number": document.number or document.source_id,
        "id": document.source_id,
        "ext": ext,
        "currency": document.currency,
    }


def validate_template(template: str) -> None:
    """Raise ``ConfigError`` for a template that uses unknown fields or escapes the root."""
    if template.startswith("/") or ".." in template.split("/"):
        raise ConfigError(f"path template {template!r} must be relative and must not contain '..'")
    for _, field_name, _, _ in string.Formatter().parse(template):
        if field_name is not None and field_name not in FIELDS:
            raise ConfigError(
                f"unknown template field {{{field_name}}} in {template!r}; use one of {', '.join(FIELDS)}"
            )


def render_path(template: str, document: Document, *, ext: str = "pdf", rules: NameRules = LOCAL_RULES) -> str:
    """Render ``template`` for ``document`` into a relative path of safe segments."""
    fields = template_fields(document, ext)
    segments = []
    for part in _parsed_template(template):
        rendered = ""
        for literal, name, spec in part:
            rendered += literal
            if name is not None:
                rendered += safe_segment(format(fields[name], spec), rules)
        segments.append(safe_segment(rendered, rules))
    return "/".join(segments)


@functools.lru_cache(maxsize=128)
def _parsed_template(template: str) -> tuple[tuple[tuple[str, str | None, str], ...], ...]:
    """``template``, checked, as (literal, field, format spec) per segment: parsed once per template,
    not once per document."""
    validate_template(template)
    formatter = _StrictFormatter()
    known = dict.fromkeys(FIELDS)
    parts = []
    for part in template.split("/"):
        if part:
            pieces = []
            for literal, name, spec, _ in formatter.parse(part):
                if name is not None:
                    formatter.get_field(name, (), known)  # a ConfigError for a field not allowed
                pieces.append((literal, name, spec or ""))
            parts.append(tuple(pieces))
    return tuple(parts)


def with_suffix_number(path: str, n: int) -> str:
    """``a/b.pdf`` → ``a/b (2).pdf``: the "keep both" name for a collision."""
    head, slash, name = path.rpartition("/")
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    return f"{head}{slash}{stem} ({n}){'.' + ext if ext else ''}"


def numbered(path: str, n: int, rules: NameRules = LOCAL_RULES) -> str:
    """:func:`with_suffix_number`, shortening the stem so the name stays within ``rules.max_bytes``."""
    head, slash, name = path.rpartition("/")
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    tail = f" ({n})" + (f".{ext}" if ext else "")
    budget = rules.max_bytes - len(tail.encode())
    return f"{head}{slash}{stem.encode()[:budget].decode(errors='ignore')}{tail}"


def sibling(path: str, ext: str) -> str:
    """The path of a companion file: ``x/inv.pdf`` → ``x/inv.xml`` (the UBL beside the PDF)."""
    head, slash, name = path.rpartition("/")
    stem, dot, _ = name.rpartition(".")
    return f"{head}{slash}{stem if dot else name}.{ext}"


# --- every file of a document ----------------------------------------------------------------

_EXT = re.compile(r"^[A-Za-z0-9]{1,10}$")


def file_ext(ref: FileRef) -> str:
    """The extension a file is stored with: its own name's, else one for its media type."""
    _stem, dot, ext = ref.name.rpartition(".")
    if dot and _EXT.match(ext):
        return ext.lower()
    guessed = mimetypes.guess_extension(ref.media_type.split(";")[0].strip()) or ".bin"
    return guessed.lstrip(".")


def main_file(files: Sequence[FileRef]) -> FileRef | None:
    """The file that names the document: the PDF, else the UBL, else the first (an image-only purchase)."""
    for role in (FileRole.PDF, FileRole.UBL):
        found = next((f for f in files if f.role is role), None)
        if found is not None:
            return found
    return files[0] if files else None


def attachment_path(main_path: str, name: str, rules: NameRules = LOCAL_RULES) -> str:
    """Beside the main file, named after it plus the attachment's own name:
    ``x/2026-01-05_Acme_INV-1.pdf`` + ``terms.pdf`` → ``x/2026-01-05_Acme_INV-1_terms.pdf``."""
    head, slash, main = main_path.rpartition("/")
    stem, dot, _ = main.rpartition(".")
    own = unicodedata.normalize("NFC", name).rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    return f"{head}{slash}{safe_segment(f'{stem if dot else main}_{own}', rules)}"


def plan_files(main_path: str, files: Sequence[FileRef], rules: NameRules = LOCAL_RULES) -> list[tuple[str, FileRef]]:
    """Where each file of a document goes, the main file first at ``main_path`` (rendered with
    ``file_ext(main_file(files))``): the UBL beside a PDF as ``.xml``, every other file as an
    :func:`attachment_path`. Names are unique within the document, compared case-insensitively
    (as Dropbox, Windows and macOS do); a repeat gets `` (2)``."""
    main = main_file(files)
    if main is None:
        return []
    planned: list[tuple[str, FileRef]] = [(main_path, main)]
    taken = {main_path.casefold()}
    for ref in files:
        if ref is main:
            continue
        if ref.role is FileRole.UBL and main.role is FileRole.PDF:
            path = sibling(main_path, "xml")
        else:
            path = attachment_path(main_path, ref.name if "." in ref.name else f"{ref.name}.{file_ext(ref)}", rules)
        candidate, n = path, 1
        while candidate.casefold() in taken:
            n += 1
            candidate = numbered(path, n, rules)
        taken.add(candidate.casefold())
        planned.append((candidate, ref))
    return planned


def file_keys(files: Sequence[FileRef]) -> list[str]:
    """A stable key per file of a document, for finding each again on a later run: the role for
    the PDF and the UBL (as ledgers written before attachments have it), ``attachment:<name>``
    for an attachment, and ``#2``, ``#3``... on a repeat (two photos both called ``photo.jpg``)."""
    seen: dict[str, int] = {}
    keys = []
    for ref in files:
        key = ref.role.value if ref.role is not FileRole.ATTACHMENT else f"attachment:{ref.name}"
        seen[key] = seen.get(key, 0) + 1
        keys.append(key if seen[key] == 1 else f"{key}#{seen[key]}")
    return keys
