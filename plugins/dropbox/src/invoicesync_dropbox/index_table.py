"""Where the folder index keeps its entries: on disk, not in the process's memory.

During a run the entries are rows of a private SQLite file (``sqlite3.connect("")``: on disk,
deleted when closed), so a folder of 10,000 files costs SQLite's small page cache, not a Python
object per file. Between runs they live in the plugin's kv state, cut into shards of
``SHARD_ROWS`` rows each, so neither loading nor saving ever holds the whole folder in memory.

A save writes the new shards under a generation of its own (a random name), then switches the head
(root, cursor, generation, shard count) in one atomic ``kv.update`` that also lists the replaced
generation as retired, then deletes the retired generations' shards. Several processes (Celery
workers of one account) may save at once: none ever writes into shards another head points to, so
a head and its shards always match. A reader whose shards were deleted under it (a newer head
retired them) gets ``ShardMissing`` and lists the folder afresh, never a partial index. A run that
dies mid-save leaves the previous head and its shards whole. An index saved whole in the head
(``rows``, or ``entries`` before rows) or in the numbered slots of before is still read.
"""

from __future__ import annotations

import sqlite3
import sys
import uuid
from collections.abc import Iterator
from typing import Any

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


# -- between runs: the kv shards ---------------------------------------------------------------


class ShardMissing(Exception):
    """A shard of the stored index is gone: a newer save retired it while we read."""


def _shard_key(generation: str, number: int) -> str:
    return f"{KV_KEY}/{generation}/{number}"


def _generation(head: Any) -> str | None:
    """The generation a shard-based head points to (a numbered slot for heads saved before)."""
    if not isinstance(head, dict) or not isinstance(head.get("shards"), int):
        return None
    return str(head.get("generation") if head.get("generation") is not None else int(head.get("slot") or 0))


def stored_rows(kv: KeyValue, head: Any) -> Iterator[Metadata]:
    """The entries of a stored index, one shard at a time, as metadata dicts (``ShardMissing``
    when one of its shards is gone)."""
    if not isinstance(head, dict):
        return
    fields = head.get("fields")
    if not isinstance(fields, list):
        fields = list(KEPT)
    generation = _generation(head)
    if generation is None:  # saved whole in the head
        yield from _rows(head.get("rows") or [], fields)
    else:
        for number in range(head["shards"]):
            page = kv.get(_shard_key(generation, number))
            if not isinstance(page, list):
                raise ShardMissing(_shard_key(generation, number))
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
    generation = uuid.uuid4().hex
    count = 0
    for count, page in enumerate(table.pages(SHARD_ROWS), start=1):
        kv.set(_shard_key(generation, count - 1), page)
    head = {"root": root, "cursor": cursor, "fields": list(KEPT), "generation": generation, "shards": count}

    def switch(old: Any) -> dict[str, Any]:
        retired = list(old.get("retired") or []) if isinstance(old, dict) else []
        replaced = _generation(old)
        if replaced is not None:
            retired.append([replaced, old["shards"]])
        return {**head, "retired": retired}

    retired = kv.update(KV_KEY, switch)["retired"]
    for replaced, shards in retired:
        for number in range(int(shards)):
            kv.delete(_shard_key(str(replaced), number))
    done = {str(replaced) for replaced, _ in retired}
    kv.update(KV_KEY, lambda now: {**now, "retired": [r for r in now.get("retired") or [] if str(r[0]) not in done]}
              if isinstance(now, dict) else now)
