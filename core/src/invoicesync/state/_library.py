"""Library queries for the ``documents`` view, the dashboard's Documents page and the sync summary:
documents with their ledger, a page at a time, however big the library.

A page costs a handful of statements, never one per document: the page's keys (keyset, never
OFFSET), their bodies, their ledger rows, and for the dashboard a capped count. What keeps that fast
at 100,000 documents (benchmarks/serve_documents.py):

- the text search matches ``documents.search``, the number and the counterparty's name lower-cased
  when the document is stored (migration 10), instead of parsing every document's JSON;
- a status filter walks the library newest first and checks each document's ledger rows through the
  ``deliveries_status (status, target, document_id)`` index, unless the status is rare (failed,
  pending, …): then it starts from those ledger rows instead, so a status held by a few documents, or
  by none, is not a walk through the whole library;
- only the keys are sorted; the page's bodies are read by key afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..models import Delivery, DeliveryStatus, Document
from ._store import DocumentFilter, FailingSince, LibraryEntry, PersistentFailure

#: A result row, read by column name (``sqlite3.Row``, or a dict from PostgreSQL).
Row = Any

#: A status held by at most this many ledger rows (at the chosen targets) is looked up from the
#: ledger's side; a commoner one is checked per document, since most documents then match.
RARE_STATUS_ROWS = 20_000
#: The dashboard counts the documents that match filters up to this many, then says "more than" (the
#: whole library, unfiltered, is counted exactly: that is cheap).
COUNT_CAP = 1_000
#: Documents per statement when the CLI walks the whole library.
BATCH = 100


@dataclass
class LibraryPage:
    entries: list[LibraryEntry]
    #: Pass as ``before`` for the next (older) page; None on the last page.
    next_before: int | None
    keys: list[int] = field(default_factory=list)  #: the rowid of each entry (the keyset)
    #: How many documents match the filters in all (not only this page), at most ``count_cap``.
    matches: int = 0
    #: True when more than ``matches`` documents match (the count stopped at its cap).
    more_than: bool = False


def search_text(document: Document) -> str:
    """What the text search looks in (``documents.search``): the number and the counterparty, lower-cased
    (cut at 500 characters, so an absurdly long name still fits in an index entry)."""
    return f"{document.number}\n{document.counterparty.name}".lower()[:500]


def like_pattern(text: str) -> str:
    """``text`` anywhere, lower-cased, with LIKE's wildcards taken literally (``ESCAPE '\\'``)."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def document_where(filters: DocumentFilter, *, text: str = "", status_from_ledger: bool = False
                   ) -> tuple[str, list[Any]]:
    """The WHERE clause (over ``documents d``) and its parameters for ``filters`` and the search ``text``.
    ``status_from_ledger``: match the status with ``d.id IN (ledger rows)`` rather than a per-document
    ``EXISTS`` (the better plan when the status is rare; see :meth:`LibraryQueries.status_is_rare`)."""
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
    if text.strip():
        clauses.append("d.search LIKE ? ESCAPE '\\'")
        params.append(like_pattern(text.strip()))
    if filters.status is not None:
        targets = ", ".join("?" * len(filters.targets)) or "NULL"
        if filters.status == "undelivered":
            clauses.append(f"(SELECT count(*) FROM deliveries l WHERE l.document_id = d.id "
                           f"AND l.target IN ({targets})) < ?")
            params += [*filters.targets, len(filters.targets)]
        elif status_from_ledger:
            clauses.append(f"d.id IN (SELECT l.document_id FROM deliveries l WHERE l.status = ? "
                           f"AND l.target IN ({targets}))")
            params += [filters.status, *filters.targets]
        else:
            clauses.append(f"EXISTS (SELECT 1 FROM deliveries l WHERE l.document_id = d.id "
                           f"AND l.status = ? AND l.target IN ({targets}))")
            params += [filters.status, *filters.targets]
    return " AND ".join(clauses) or "1 = 1", params


class LibraryQueries:
    """Mixed into the SQL stores (SQLite and PostgreSQL)."""

    #: How a text search reads the documents (after ``FROM documents d``): a backend's index hint.
    TEXT_SEARCH_SCAN = ""

    def _all(self, sql: str, params: tuple[Any, ...] = ()) -> list[Row]:
        raise NotImplementedError

    def _delivery(self, row: Row) -> Delivery:
        raise NotImplementedError

    def status_is_rare(self, filters: DocumentFilter) -> bool:
        """Whether ``filters.status`` is held by few ledger rows at its targets (an index-only count
        that stops at :data:`RARE_STATUS_ROWS`)."""
        if filters.status is None or filters.status == "undelivered" or not filters.targets:
            return False
        targets = ", ".join("?" * len(filters.targets))
        rows = self._all(f"SELECT count(*) AS n FROM (SELECT 1 FROM deliveries WHERE status = ? "
                         f"AND target IN ({targets}) LIMIT ?) rare",
                         (filters.status, *filters.targets, RARE_STATUS_ROWS + 1))
        return int(rows[0]["n"]) <= RARE_STATUS_ROWS

    def _where(self, filters: DocumentFilter, text: str = "") -> tuple[str, list[Any]]:
        return document_where(filters, text=text, status_from_ledger=self.status_is_rare(filters))

    def _keys(self, where: str, params: list[Any], *, after: int | None = None, before: int | None = None,
              limit: int, scan: str = "") -> list[int]:
        """The rowids of matching documents past ``after`` (oldest first) or before ``before`` (newest first)."""
        if before is not None or after is None:
            sql = (f"SELECT d.rowid AS k FROM documents d {scan} WHERE {where} AND d.rowid < ? "
                   "ORDER BY d.rowid DESC LIMIT ?")
            bound = before if before is not None else 2**62
        else:
            sql = f"SELECT d.rowid AS k FROM documents d {scan} WHERE {where} AND d.rowid > ? ORDER BY d.rowid LIMIT ?"
            bound = after
        return [int(r["k"]) for r in self._all(sql, (*params, bound, limit))]

    def _documents(self, keys: list[int]) -> list[Document]:
        """The documents of ``keys``, in that order: one statement."""
        if not keys:
            return []
        rows = self._all(f"SELECT rowid AS k, body FROM documents WHERE rowid IN ({', '.join('?' * len(keys))})",
                         tuple(keys))
        bodies = {int(r["k"]): r["body"] for r in rows}
        return [Document.model_validate_json(bodies[k]) for k in keys if k in bodies]

    def get_documents(self, document_ids: list[str]) -> list[Document]:
        """The stored documents among ``document_ids``, in that order: one statement, where
        ``get_document`` for each costs a round trip each (an export task's batch)."""
        if not document_ids:
            return []
        rows = self._all(f"SELECT id, body FROM documents WHERE id IN ({', '.join('?' * len(document_ids))})",
                         tuple(document_ids))
        bodies = {r["id"]: r["body"] for r in rows}
        return [Document.model_validate_json(bodies[i]) for i in document_ids if i in bodies]

    def find_documents(self, filters: DocumentFilter) -> Iterator[Document]:
        """Matching documents, oldest first, :data:`BATCH` at a time (a long export never holds the
        whole library, nor a lock for long)."""
        for keys in self._batches(filters):
            yield from self._documents(keys)

    def library(self, filters: DocumentFilter) -> Iterator[LibraryEntry]:
        """Matching documents with their ledger, oldest first: three statements per :data:`BATCH` (and
        one to tell whether a status is rare)."""
        for keys in self._batches(filters):
            yield from self._with_ledger(self._documents(keys))

    def _batches(self, filters: DocumentFilter) -> Iterator[list[int]]:
        """The keys of matching documents, oldest first, :data:`BATCH` at a time."""
        where, params = self._where(filters)
        last = 0
        while keys := self._keys(where, params, after=last, limit=BATCH):
            yield keys
            if len(keys) < BATCH:  # the last batch: no need to ask for an empty one
                return
            last = keys[-1]

    def library_page(self, filters: DocumentFilter, *, text: str = "", before: int | None = None,
                     limit: int = 50, count_cap: int = COUNT_CAP) -> LibraryPage:
        """Newest first (by import order), ``limit`` per page; ``text`` matches the number or the
        counterparty's name, in any case. The same few statements whatever the library's size, and a
        count of the matches that stops at ``count_cap`` (0: no count)."""
        where, params = self._where(filters, text)
        scan = self.TEXT_SEARCH_SCAN if text.strip() else ""
        if count_cap and before is None and text.strip():
            # A search looks at every document anyway: the first page and the count in one scan.
            found = self._keys(where, params, limit=max(count_cap, limit) + 1, scan=scan)
            matches, keys = len(found), found[:limit + 1]
        else:
            keys = self._keys(where, params, before=before, limit=limit + 1, scan=scan)
            matches = self._count(where, params, count_cap, scan) if count_cap else 0
        more, keys = len(keys) > limit, keys[:limit]
        documents = self._documents(keys)
        entries = list(self._with_ledger(documents)) if documents else []
        capped = where != "1 = 1" and matches > count_cap
        return LibraryPage(entries, keys[-1] if more else None, keys, count_cap if capped else matches, capped)

    def _count(self, where: str, params: list[Any], cap: int, scan: str) -> int:
        """Matching documents, up to ``cap + 1``; all of them, exactly and cheaply, when nothing is filtered."""
        if where == "1 = 1":
            return int(self._all("SELECT count(*) AS n FROM documents")[0]["n"])
        # No ORDER BY: the database may count in whatever order is cheapest (a rare status's ledger rows).
        sql = f"SELECT count(*) AS n FROM (SELECT 1 FROM documents d {scan} WHERE {where} LIMIT ?) capped"
        return int(self._all(sql, (*params, cap + 1))[0]["n"])

    def _with_ledger(self, documents: list[Document]) -> Iterator[LibraryEntry]:
        """The page's deliveries in one query, not one per document."""
        entries = {d.id: LibraryEntry(d, {}, {}) for d in documents}
        if not entries:
            return
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
