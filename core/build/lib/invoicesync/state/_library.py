"""Library queries for the ``documents`` view and the sync summary: documents with their ledger
(two statements per page of 100 documents, not one per document), and what keeps failing."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from ..models import Delivery, DeliveryStatus, Document
from ._store import DocumentFilter, FailingSince, LibraryEntry, PersistentFailure


def document_where(filters: DocumentFilter) -> tuple[str, list[Any]]:
    """The WHERE clause (over ``documents d``) and its parameters for ``filters``."""
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("account", filters.account), ("company", filters.company),
        ("direction", filters.direction), ("kind", filters.kind),
    ):
        if value is not None:
            clauses.append(f"d.{column} = ?")
            params.append(value)
    if filters.since:
        clauses.append("d.issue_date >= ?")
        params.append(filters.since.isoformat())
    if filters.until:
        clauses.append("d.issue_date <= ?")
        params.append(filters.until.isoformat())
    if filters.only_deleted:
        clauses.append("d.deleted = 1")
    elif not filters.include_deleted:
        clauses.append("d.deleted = 0")
    if filters.status is not None:
        targets = ", ".join("?" * len(filters.targets)) or "NULL"
        if filters.status == "undelivered":
            clauses.append(f"(SELECT count(*) FROM deliveries l WHERE l.document_id = d.id "
                           f"AND l.target IN ({targets})) < ?")
            params += [*filters.targets, len(filters.targets)]
        else:
            clauses.append(f"EXISTS (SELECT 1 FROM deliveries l WHERE l.document_id = d.id "
                           f"AND l.status = ? AND l.target IN ({targets}))")
            params += [filters.status, *filters.targets]
    return " AND ".join(clauses) or "1", params


class LibraryQueries:
    """Mixed into the SQLite store."""

    def _all(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        raise NotImplementedError

    def _delivery(self, row: sqlite3.Row) -> Delivery:
        raise NotImplementedError

    def library(self, filters: DocumentFilter) -> Iterator[LibraryEntry]:
        where, params = document_where(filters)
        sql = f"SELECT d.rowid, d.body FROM documents d WHERE {where} AND d.rowid > ? ORDER BY d.rowid LIMIT 100"
        last = 0
        while True:  # keyset pages: a big library is never held in memory, nor the lock for long
            rows = self._all(sql, (*params, last))
            if not rows:
                return
            documents = [Document.model_validate_json(row["body"]) for row in rows]
            yield from self._with_ledger(documents)
            last = rows[-1]["rowid"]

    def _with_ledger(self, documents: list[Document]) -> Iterator[LibraryEntry]:
        """The page's deliveries in one query, not one per document."""
        entries = {d.id: LibraryEntry(d, {}, {}) for d in documents}
        marks = ", ".join("?" * len(entries))
        for row in self._all(f"SELECT * FROM deliveries WHERE document_id IN ({marks}) ORDER BY target",
                             tuple(entries)):
            entry = entries[row["document_id"]]
            entry.deliveries[row["target"]] = self._delivery(row)
            if row["status"] == DeliveryStatus.FAILED.value and row["first_failed_at"]:
                entry.failing[row["target"]] = FailingSince(datetime.fromisoformat(row["first_failed_at"]),
                                                            row["failed_attempts"], row["failed_runs"])
        yield from entries.values()

    def persistent_failures(self, min_runs: int = 2) -> list[PersistentFailure]:
        """Deliveries and fetches that failed in at least ``min_runs`` runs, oldest first."""
        rows = self._all(
            """SELECT target AS "where", document_id AS document, message, first_failed_at,
                      failed_attempts AS attempts, failed_runs AS runs
               FROM deliveries WHERE status = 'failed' AND failed_runs >= ?
               UNION ALL
               SELECT account || '/' || company, source_id, error, COALESCE(first_failed_at, at), attempts, attempts
               FROM failures WHERE attempts >= ?
               ORDER BY first_failed_at""",
            (min_runs, min_runs),
        )
        return [PersistentFailure(r["where"], r["document"], r["message"] or "failed",
                                  FailingSince(datetime.fromisoformat(r["first_failed_at"]), r["attempts"], r["runs"]))
                for r in rows]

