"""Where the folder index keeps its entries: on disk, not in the process's memory.

During a run the entries are rows of a private SQLite file (``sqlite3.connect("")``: on disk,
deleted when closed), so a folder of 10,000 files costs SQLite's small page cache, not a Python
object per file. Between runs they live in the plugin's kv state, cut into shards of
``SHARD_ROWS`` rows each, so neither loading nor saving ever holds the whole folder in memory.

Core's ``invoicesync.kv_shards.ShardedValue`` keeps them: a save writes the shards under a
generation of its own and switches the head (root, cursor, fields, generation, shard count)
atomically, retiring the old generation, so two processes (Celery workers of one account) saving at
once never write into each other's shards. A reader whose shards were deleted under it (a newer head
retired them) gets ``ShardMissing`` and lists the folder afresh, never a partial index. A run that
dies mid-save leaves the previous head and its shards whole. An index saved whole in the head
(``rows``, or ``entries`` before rows) or in the numbered slots of before is still read.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterator
from typing import Any

from invoicesync.kv_shards import Generation, ShardedValue
from invoicesync.kv_shards import ShardMissing as ShardMissing  # what a reader catches
from invoicesync.state import KeyValue

KV_KEY = "folder-index"
#: Rows per kv shard: a shard of ~250 bytes a row is what loading or saving holds at once.
SHARD_ROWS = 1000
#: What placement and the ledger need of an entry; the rest is not kept, in this order.
KEPT = (".tag", "id", "rev", "content_hash", "size", "path_display", "path_lower", "name")
Row = tuple[Any, ...]
Metadata = dict[str, Any]

_COLUMNS = ("tag", "id", "rev", "content_hash", "size", "path_display", "path_lower", "name")
_SCHEMA = f"""
    PRAGMA journal_mode = OFF;
    PRAGMA synchronous = OFF;
    PRAGMA cache_size = -1024;
    CREATE TABLE entries (key TEXT PRIMARY KEY, {", ".join(_COLUMNS)}) WITHOUT ROWID;
"""


def row_of(meta: Metadata) -> Row:
    tag = meta.get(".tag")
    return (sys.intern(tag) if isinstance(tag, str) else tag, *(meta.get(k) for k in KEPT[1:]))


def meta_of(row: Row) -> Metadata:
    return {k: v for k, v in zip(KEPT, row, strict=True) if v is not None}


class EntryTable:
    """Path key → entry row, in a private SQLite file. Not thread-safe: the index holds its lock."""

    def __init__(self) -> None:
        self._db = sqlite3.connect("", check_same_thread=False, isolation_level=None)
        self._db.executescript(_SCHEMA)
        self._insert = (f"INSERT OR REPLACE INTO entries (key, {', '.join(_COLUMNS)}) "
                        f"VALUES (?, {', '.join('?' * len(_COLUMNS))})")

    def get(self, key: str) -> Row | None:
        found = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM entries WHERE key = ?", (key,)).fetchone()
        return tuple(found) if found is not None else None

    def put(self, key: str, row: Row) -> None:
        self._db.execute(self._insert, (key, *row))

    def delete(self, key: str) -> None:
        self._db.execute("DELETE FROM entries WHERE key = ?", (key,))

    def delete_tree(self, key: str) -> None:
        """``key`` and everything under it: keys from ``key/`` up to (not including) ``key0``, the
        next character after ``/``, are exactly the ones inside the folder."""
        self._db.execute("DELETE FROM entries WHERE key = ? OR (key >= ? AND key < ?)", (key, key + "/", key + "0"))

    def clear(self) -> None:
        self._db.execute("DELETE FROM entries")

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM entries").fetchone()[0])

    def pages(self, size: int) -> Iterator[list[list[Any]]]:
        """Every row, ``size`` at a time (in key order, read by key range: no cursor is held open
        across the caller's work)."""
        after = ""
        while True:
            rows = self._db.execute(f"SELECT key, {', '.join(_COLUMNS)} FROM entries WHERE key > ? "
                                    "ORDER BY key LIMIT ?", (after, size)).fetchall()
            if not rows:
                return
            after = rows[-1][0]
            yield [list(row[1:]) for row in rows]

    def close(self) -> None:
        self._db.close()


# -- between runs: the kv shards (``invoicesync.kv_shards``) ---------------------------------


def _generation(head: Any) -> Generation | None:
    """The shards a head points to: its generation, or the numbered slot of heads saved before."""
    if not isinstance(head, dict) or not isinstance(head.get("shards"), int):
        return None
    return Generation(str(head.get("generation") if head.get("generation") is not None else int(head.get("slot") or 0)),
                  head["shards"])


def _store(kv: KeyValue) -> ShardedValue:
    return ShardedValue(kv, KV_KEY, locate=_generation)


def stored_rows(kv: KeyValue, head: Any) -> Iterator[Metadata]:
    """The entries of a stored index, one shard at a time, as metadata dicts (``ShardMissing``
    when one of its shards is gone)."""
    if not isinstance(head, dict):
        return
    fields = head.get("fields")
    if not isinstance(fields, list):
        fields = list(KEPT)
    if _generation(head) is None:  # saved whole in the head
        yield from _rows(head.get("rows") or [], fields)
    else:
        for page in _store(kv).pages(head):
            yield from _rows(page, fields)
    for meta in head.get("entries") or []:  # an index saved before rows
        if isinstance(meta, dict):
            yield meta


def _rows(page: list[Any], fields: list[Any]) -> Iterator[Metadata]:
    for row in page:
        if isinstance(row, list) and len(row) == len(fields):
            yield dict(zip(fields, row, strict=True))


def save_shards(kv: KeyValue, table: EntryTable, root: str, cursor: str) -> None:
    """Keep ``table`` and ``cursor`` for the next run (see the module's note on concurrent saves)."""
    _store(kv).save(table.pages(SHARD_ROWS), {"root": root, "cursor": cursor, "fields": list(KEPT)})
