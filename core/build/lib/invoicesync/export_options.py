"""Export options: which documents a target account takes, and which of their files.

They sit beside the plugin's own settings of a target account (``invoicesync connect dropbox
--files pdf,attachments --since 2025-01-01``, or ``[accounts.NAME.settings]`` in the TOML), but
the core owns and applies them, so every target honours them the same way — as GetMyInvoices
offers when an export is added. A document they leave out is recorded ``skipped`` with the
reason and never reaches the plugin; the files they leave out are not in ``PushRequest.files``.

Each delivery remembers a fingerprint of the options it was made under: changing an option
re-checks the documents already settled at that target, and back-fills what is now wanted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError
from .models import Account, AccountDirection, Direction, Document, DocumentKind, FileRef, FileRole

FileChoice = Literal["pdf", "ubl", "attachments"]

#: Bumped when what "all the files of a document" means changes (2: attachments too, not only
#: PDF + UBL), so deliveries made under the old meaning are offered again and back-filled.
FILES_CONTRACT = 2


class ExportOptions(BaseModel):
    """The core's export options of one target account. ``None`` means "no narrowing"."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    files: list[FileChoice] | None = Field(
        default=None, min_length=1, description="Which files of each document: pdf, ubl, attachments (default: all)")
    directions: list[Direction] | None = Field(
        default=None, min_length=1, description="Only these directions: sales, purchase (default: both)")
    kinds: list[DocumentKind] | None = Field(
        default=None, min_length=1, description="Only these kinds: invoice, credit_note, … (default: all)")
    since: date | None = Field(default=None, description="Only documents issued on or after this day (YYYY-MM-DD)")
    until: date | None = Field(default=None, description="Only documents issued on or before this day (YYYY-MM-DD)")
    companies: list[str] | None = Field(
        default=None, min_length=1, description="Only documents of these companies (id or name)")

    @field_validator("files", "directions", "kinds", "companies", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        # The command line and the environment give one string: "pdf,ubl"; "" lifts the narrowing.
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()] or None
        if isinstance(value, list):  # "attachment" reads as naturally as "attachments"
            value = ["attachments" if item == "attachment" else item for item in value]
        return value

    @field_validator("since", "until", mode="before")
    @classmethod
    def _empty_is_no_limit(cls, value: Any) -> Any:
        return None if value == "" else value

    @model_validator(mode="after")
    def _range(self) -> ExportOptions:
        if self.since and self.until and self.since > self.until:
            raise ValueError(f"since ({self.since}) is after until ({self.until})")
        return self

    def exclusion(self, document: Document) -> str | None:
        """Why this target does not take ``document`` (``None``: it does)."""
        if self.directions and document.direction not in self.directions:
            return f"{document.direction.value} documents are not exported here (directions = {_list(self.directions)})"
        if self.kinds and document.kind not in self.kinds:
            return f"{document.kind.value} documents are not exported here (kinds = {_list(self.kinds)})"
        if self.companies and not {document.company.id, document.company.name} & set(self.companies):
            return f"company {document.company.id} is not exported here (companies = {_list(self.companies)})"
        if self.since or self.until:
            issued = document.issue_date
            if issued is None:
                return "has no issue date, and this target only takes documents issued within since/until"
            if self.since and issued < self.since:
                return f"issued before {self.since} (since)"
            if self.until and issued > self.until:
                return f"issued after {self.until} (until)"
        return None

    def select(self, files: Iterable[FileRef]) -> list[FileRef]:
        """The files of a document this target should hold, in the document's order."""
        if not self.files:
            return list(files)
        wanted = {_ROLE_OF[choice] for choice in self.files}
        return [f for f in files if f.role in wanted]

    def fingerprint(self) -> str:
        """Stable across runs and key order; changes when an option or the files contract changes."""
        payload = {"contract": FILES_CONTRACT, **self.model_dump(mode="json", exclude_none=True)}
        for key in ("files", "directions", "kinds", "companies"):
            if key in payload:
                payload[key] = sorted(set(payload[key]))
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def describe(self) -> dict[str, Any]:
        """The options that narrow anything, for ``accounts`` (empty: everything is exported)."""
        return self.model_dump(mode="json", exclude_none=True)


_ROLE_OF = {"pdf": FileRole.PDF, "ubl": FileRole.UBL, "attachments": FileRole.ATTACHMENT}
#: The setting names the core takes from a target account's settings.
EXPORT_OPTION_NAMES: frozenset[str] = frozenset(ExportOptions.model_fields)


def _list(values: Iterable[object]) -> str:
    return ", ".join(str(getattr(v, "value", v)) for v in values)


def split_settings(account: Account) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(plugin settings, export options)`` of an account; a source has no export options."""
    if account.direction is not AccountDirection.EXPORT:
        return dict(account.settings), {}
    plugin = {k: v for k, v in account.settings.items() if k not in EXPORT_OPTION_NAMES}
    export = {k: v for k, v in account.settings.items() if k in EXPORT_OPTION_NAMES}
    return plugin, export


def export_options(account: Account, overrides: Mapping[str, Any] | None = None) -> ExportOptions:
    """The account's validated export options; ``ConfigError`` says which value is wrong."""
    _, values = split_settings(account)
    values.update(overrides or {})
    try:
        return ExportOptions.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'export options'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"account {account.name!r} has invalid export options: {problems}") from None


def unknown_settings(keys: Iterable[str], plugin_fields: Iterable[str], *, target: bool) -> list[str]:
    """The keys that are neither a plugin setting nor (for a target) an export option."""
    known = set(plugin_fields) | (EXPORT_OPTION_NAMES if target else set())
    return sorted(k for k in keys if k not in known)


def unknown_settings_message(where: str, unknown: list[str], plugin_fields: Iterable[str], *, target: bool) -> str:
    plugin_names = ", ".join(sorted(plugin_fields)) or "none"
    message = f"{where}: unknown setting {', '.join(unknown)}; the plugin's settings are: {plugin_names}"
    if target:
        message += f"; export options: {', '.join(sorted(EXPORT_OPTION_NAMES))}"
    return message
