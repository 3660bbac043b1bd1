"""What the dashboard reads beyond the ``documents`` view: past runs, each delivery's history,
library pages newest first (keyset, never OFFSET) and the counts behind ``/metrics``."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..models import Document
from ._library import document_where
from ._store import DocumentFilter, LibraryEntry


@dataclass
class RunRecord:
    """One finished run of the pipeline (CLI or dashboard): its report as ``SyncReport.as_dict``."""

    id: int
    started_at: datetime
    finished_at: datetime
    accounts: list[str]  #: the accounts asked for; empty: all
    exit_code: int
    report: dict[str, Any]


@dataclass
class LoggedDelivery:
    """One settled outcome of a document at a target, as it was at that moment."""

    target: str
    version: str
    status: str
    target_path: str | None
    message: str | None
    at: datetime


@dataclass
class LibraryPage:
    entries: list[LibraryEntry]
    #: Pass as ``before`` for the next (older) page; None on the last page.
    next_before: int | None
    keys: list[int] = field(default_factory=list)  #: the rowid of each entry (the keyset)


@dataclass
class LibraryCounts:
    documents: dict[str, int]  #: imported documents by source account
    deliveries: dict[tuple[str, str], int]  #: ledger rows by (target, status)


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class HistoryQueries:
    """Mixed into the SQLite store."""

    def _all(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        raise NotImplementedError

    def _exec(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> sqlite3.Cursor:
        raise NotImplementedError

    def _with_ledger(self, documents: list[Document]) -> Iterator[LibraryEntry]:
        raise NotImplementedError

    # -- runs --------------------------------------------------------------------------------

    def record_run(self, started_at: datetime, finished_at: datetime, accounts: Sequence[str], exit_code: int,
                   report: dict[str, Any]) -> int:
        cursor = self._exec(
            "INSERT INTO runs (started_at, finished_at, accounts, exit_code, report) VALUES (?, ?, ?, ?, ?)",
            (started_at.isoformat(timespec="seconds"), finished_at.isoformat(timespec="seconds"),
             json.dumps(list(accounts)), exit_code, json.dumps(report, default=str)),
        )
        return int(cursor.lastrowid or 0)

    def runs(self, *, before: int | None = None, limit: int = 50) -> list[RunRecord]:
        """Finished runs, newest first; ``before`` (a run id) pages on."""
        rows = self._all("SELECT * FROM runs WHERE id < ? ORDER BY id DESC LIMIT ?",
                         (before if before is not None else 2**62, limit))
        return [self._run_record(r) for r in rows]

    def run(self, run_id: int) -> RunRecord | None:
        rows = self._all("SELECT * FROM runs WHERE id = ?", (run_id,))
        return self._run_record(rows[0]) if rows else None

    @staticmethod
    def _run_record(row: sqlite3.Row) -> RunRecord:
        return RunRecord(row["id"], datetime.fromisoformat(row["started_at"]),
                         datetime.fromisoformat(row["finished_at"]), json.loads(row["accounts"]),
                         row["exit_code"], json.loads(row["report"]))

    # -- one document's delivery history -----------------------------------------------------

    def delivery_log(self, document_id: str) -> list[LoggedDelivery]:
        rows = self._all("SELECT * FROM delivery_log WHERE document_id = ? ORDER BY at, rowid", (document_id,))
        return [LoggedDelivery(r["target"], r["version"], r["status"], r["target_path"], r["message"],
                               datetime.fromisoformat(r["at"])) for r in rows]

    # -- the library, a page at a time -------------------------------------------------------

    def library_page(self, filters: DocumentFilter, *, text: str = "", before: int | None = None,
                     limit: int = 50) -> LibraryPage:
        """Newest first (by import order), ``limit`` per page; ``text`` matches the number or the
        counterparty's name. One query for the page and one for its ledger, however big the library."""
        where, params = document_where(filters)
        if text.strip():
            where += (" AND (d.number LIKE ? ESCAPE '\\' "
                      "OR json_extract(d.body, '$.counterparty.name') LIKE ? ESCAPE '\\')")
            params += [_like(text.strip()), _like(text.strip())]
        rows = self._all(f"SELECT d.rowid, d.body FROM documents d WHERE {where} AND d.rowid < ? "
                         "ORDER BY d.rowid DESC LIMIT ?", (*params, before if before is not None else 2**62, limit + 1))
        more = len(rows) > limit
        rows = rows[:limit]
        documents = [Document.model_validate_json(r["body"]) for r in rows]
        entries = list(self._with_ledger(documents)) if documents else []
        keys = [r["rowid"] for r in rows]
        return LibraryPage(entries, keys[-1] if more else None, keys)

    def library_counts(self) -> LibraryCounts:
        documents = {r["account"]: r["n"] for r in
                     self._all("SELECT account, count(*) AS n FROM documents GROUP BY account ORDER BY account")}
        deliveries = {(r["target"], r["status"]): r["n"] for r in
                      self._all("SELECT target, status, count(*) AS n FROM deliveries GROUP BY target, status "
                                "ORDER BY target, status")}
        return LibraryCounts(documents, deliveries)
