"""Library queries for the ``documents`` view and the sync summary: documents with their ledger,
and what keeps failing, each in one statement (per page of 100 documents) instead of one per document."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from ..models import Delivery, DeliveryStatus, Document
from ._store import DocumentFilter, FailingSince, LibraryEntry, PersistentFailure

_LEDGER = """(SELECT json_group_array(json_object(
        'target', l.target, 'version', l.version, 'status', l.status, 'target_id', l.target_id,
        'target_path', l.target_path, 'content_hash', l.content_hash, 'message', l.message, 'at', l.at,
        'extra', json(l.extra), 'first_failed_at', l.first_failed_at, 'failed_attempts', l.failed_attempts,
        'failed_runs', l.failed_runs))
    FROM deliveries l WHERE l.document_id = d.id)"""


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
    if not filters.include_deleted:
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

    def library(self, filters: DocumentFilter) -> Iterator[LibraryEntry]:
        where, params = document_where(filters)
        sql = (f"SELECT d.rowid, d.body, {_LEDGER} AS ledger FROM documents d WHERE {where} AND d.rowid > ? "
               "ORDER BY d.rowid LIMIT 100")
        last = 0
        while True:  # keyset pages: a big library is never held in memory, nor the lock for long
            rows = self._all(sql, (*params, last))
            if not rows:
                return
            for row in rows:
                yield _entry(row)
            last = rows[-1]["rowid"]

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


def _entry(row: sqlite3.Row) -> LibraryEntry:
    deliveries: dict[str, Delivery] = {}
    failing: dict[str, FailingSince] = {}
    document = Document.model_validate_json(row["body"])
    for item in json.loads(row["ledger"]):
        deliveries[item["target"]] = Delivery(
            document_id=document.id, target=item["target"], version=item["version"],
            status=DeliveryStatus(item["status"]), target_id=item["target_id"], target_path=item["target_path"],
            content_hash=item["content_hash"], message=item["message"], at=datetime.fromisoformat(item["at"]),
            extra=item["extra"] or {},
        )
        if item["status"] == "failed" and item["first_failed_at"]:
            failing[item["target"]] = FailingSince(datetime.fromisoformat(item["first_failed_at"]),
                                                   item["failed_attempts"], item["failed_runs"])
    return LibraryEntry(document, deliveries, failing)
