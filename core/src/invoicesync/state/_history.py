"""What the dashboard reads beyond the library (``_library``): past runs, each delivery's history,
and the counts behind ``/metrics``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ._library import LibraryPage, Row

__all__ = ["HistoryQueries", "LibraryCounts", "LibraryPage", "LoggedDelivery", "RunRecord"]


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
class LibraryCounts:
    documents: dict[str, int]  #: imported documents by source account
    deliveries: dict[tuple[str, str], int]  #: ledger rows by (target, status)


class HistoryQueries:
    """Mixed into the SQL stores (SQLite and PostgreSQL)."""

    def _all(self, sql: str, params: tuple[Any, ...] = ()) -> list[Row]:
        raise NotImplementedError

    def _insert_id(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        """Insert one row; the id the database gave it."""
        raise NotImplementedError

    # -- runs --------------------------------------------------------------------------------

    def record_run(self, started_at: datetime, finished_at: datetime, accounts: Sequence[str], exit_code: int,
                   report: dict[str, Any]) -> int:
        return self._insert_id(
            "INSERT INTO runs (started_at, finished_at, accounts, exit_code, report) VALUES (?, ?, ?, ?, ?)",
            (started_at.isoformat(timespec="seconds"), finished_at.isoformat(timespec="seconds"),
             json.dumps(list(accounts)), exit_code, json.dumps(report, default=str)),
        )

    def runs(self, *, before: int | None = None, limit: int = 50) -> list[RunRecord]:
        """Finished runs, newest first; ``before`` (a run id) pages on."""
        rows = self._all("SELECT * FROM runs WHERE id < ? ORDER BY id DESC LIMIT ?",
                         (before if before is not None else 2**62, limit))
        return [self._run_record(r) for r in rows]

    def run(self, run_id: int) -> RunRecord | None:
        rows = self._all("SELECT * FROM runs WHERE id = ?", (run_id,))
        return self._run_record(rows[0]) if rows else None

    @staticmethod
    def _run_record(row: Row) -> RunRecord:
        return RunRecord(row["id"], datetime.fromisoformat(row["started_at"]),
                         datetime.fromisoformat(row["finished_at"]), json.loads(row["accounts"]),
                         row["exit_code"], json.loads(row["report"]))

    # -- one document's delivery history -----------------------------------------------------

    def delivery_log(self, document_id: str) -> list[LoggedDelivery]:
        rows = self._all("SELECT * FROM delivery_log WHERE document_id = ? ORDER BY at, rowid", (document_id,))
        return [LoggedDelivery(r["target"], r["version"], r["status"], r["target_path"], r["message"],
                               datetime.fromisoformat(r["at"])) for r in rows]

    def library_counts(self) -> LibraryCounts:
        documents = {r["account"]: r["n"] for r in
                     self._all("SELECT account, count(*) AS n FROM documents GROUP BY account ORDER BY account")}
        deliveries = {(r["target"], r["status"]): r["n"] for r in
                      self._all("SELECT target, status, count(*) AS n FROM deliveries GROUP BY target, status "
                                "ORDER BY target, status")}
        return LibraryCounts(documents, deliveries)
