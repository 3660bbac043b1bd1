"""Path templates and safe file names, shared by every target.

A template such as ``{company}/{year}/{direction}/{date}_{counterparty}_{number}.pdf`` is
rendered field by field; each field's value is made safe on its own, so a counterparty called
``../../etc`` or ``A/B Ltd`` can never add a folder or climb out of the root.
"""

from __future__ import annotations

import re
import string
import unicodedata
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError
from .models import Document

DEFAULT_TEMPLATE = "{company}/{year}/{direction}/{date}_{counterparty}_{number}.{ext}"

FIELDS = (
    "company", "company_id", "year", "month", "date", "direction", "kind",
    "counterparty", "number", "id", "ext", "currency",
)

_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


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
    text = unicodedata.normalize("NFC", value)
    text = _CONTROL.sub(rules.replacement, text)
    text = "".join(rules.replacement if ch in rules.forbidden or ch in "/\\" else ch for ch in text)
    text = re.sub(r"\s+", " ", text).strip().rstrip(". ")
    if text in {"", ".", ".."}:
        text = rules.replacement
    stem, dot, _ext = text.rpartition(".")
    if stem.upper() in rules.reserved or (not dot and text.upper() in rules.reserved):
        text = rules.replacement + text
    return _truncate(text, rules.max_bytes)


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
    validate_template(template)
    fields = template_fields(document, ext)
    formatter = _StrictFormatter()
    segments = []
    for part in template.split("/"):
        if not part:
            continue
        rendered = ""
        for literal, name, spec, _ in formatter.parse(part):
            rendered += literal
            if name is not None:
                value = formatter.format_field(formatter.get_field(name, (), fields)[0], spec or "")
                rendered += safe_segment(value, rules)
        segments.append(safe_segment(rendered, rules))
    return "/".join(segments)


def with_suffix_number(path: str, n: int) -> str:
    """``a/b.pdf`` → ``a/b (2).pdf``: the "keep both" name for a collision."""
    head, slash, name = path.rpartition("/")
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    return f"{head}{slash}{stem} ({n}){'.' + ext if ext else ''}"


def sibling(path: str, ext: str) -> str:
    """The path of a companion file: ``x/inv.pdf`` → ``x/inv.xml`` (the UBL beside the PDF)."""
    head, slash, name = path.rpartition("/")
    stem, dot, _ = name.rpartition(".")
    return f"{head}{slash}{stem if dot else name}.{ext}"
