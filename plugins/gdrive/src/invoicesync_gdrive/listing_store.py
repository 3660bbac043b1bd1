"""Where the folder listings live between runs: shards of the account's kv state.

A save writes the rows (``folder, id, name, document, role, md5, sha256, created``) in shards of
``SHARD_ROWS`` with core's ``invoicesync.kv_shards.ShardedValue``: under a generation of its own,
then the head (changes token, corpus, listed folders, generation, shard count) is switched in one
atomic ``kv.update`` that retires the generation it replaced, whose shards are deleted. Two processes
(Celery workers of one account) saving at once therefore never write into shards another head
points to: whichever head wins, it matches its own shards. A reader whose shards were deleted
under it (a newer save retired them) gets ``ShardMissing`` and lists afresh, never from half an
index; a save that dies midway leaves the previous head and its shards whole.

Neither loading nor saving holds more than one shard in memory (the listings are rows of the
run's SQLite file; ``pages`` reads them a shard at a time).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from invoicesync.kv_shards import ShardedValue
from invoicesync.kv_shards import ShardMissing as ShardMissing  # what a reader catches
from invoicesync.state import KeyValue

KV_KEY = "folder-listings"
#: Rows per kv shard (~250 bytes a row): what loading or saving holds at once.
SHARD_ROWS = 1000
#: The columns of a stored row, in order (kept in the head, so a later layout can still read it).
FIELDS = ("folder", "id", "name", "document", "role", "md5", "sha256", "created")
Row = list[Any]


def stored_head(kv: KeyValue, corpus: str) -> dict[str, Any] | None:
    """The saved head if it is usable for ``corpus`` (the changes feed it was taken from)."""
    head = ShardedValue(kv, KV_KEY).head()
    if not isinstance(head, dict) or head.get("corpus") != corpus or not isinstance(head.get("token"), str):
        return None
    if head.get("fields") != list(FIELDS) or not isinstance(head.get("shards"), int) \
            or not isinstance(head.get("folders"), list) or not isinstance(head.get("generation"), str):
        return None
    return head


def stored_rows(kv: KeyValue, head: dict[str, Any]) -> Iterator[list[Row]]:
    """The saved rows, a shard at a time (``ShardMissing`` when one is gone)."""
    for page in ShardedValue(kv, KV_KEY).pages(head):
        yield [row for row in page if isinstance(row, list) and len(row) == len(FIELDS)]


def save(kv: KeyValue, pages: Iterable[list[Row]], *, corpus: str, token: str, folders: list[str]) -> None:
    """Keep the rows of ``pages`` with ``token`` for the next run (see the module's note)."""
    ShardedValue(kv, KV_KEY).save(pages, {"corpus": corpus, "token": token, "fields": list(FIELDS),
                                          "folders": folders})
