"""Where the folder listings live between runs: shards of the account's kv state.

A save writes the rows (``folder, id, name, document, role, md5, sha256, created``) in shards of
``SHARD_ROWS`` under a generation of its own (a random name), then switches the head (changes
token, corpus, listed folders, generation, shard count) in one atomic ``kv.update`` that lists the
generation it replaced as retired, then deletes the retired generations' shards. Two processes
(Celery workers of one account) saving at once therefore never write into shards another head
points to: whichever head wins, it matches its own shards. A reader whose shards were deleted
under it (a newer save retired them) gets ``ShardMissing`` and lists afresh, never from half an
index; a save that dies midway leaves the previous head and its shards whole.

Neither loading nor saving holds more than one shard in memory (the listings are rows of the
run's SQLite file; ``pages`` reads them a shard at a time).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from invoicesync.state import KeyValue

KV_KEY = "folder-listings"
#: Rows per kv shard (~250 bytes a row): what loading or saving holds at once.
SHARD_ROWS = 1000
#: The columns of a stored row, in order (kept in the head, so a later layout can still read it).
FIELDS = ("folder", "id", "name", "document", "role", "md5", "sha256", "created")
Row = list[Any]


class ShardMissing(Exception):
    """A shard of the stored listings is gone: a newer save retired it while we read."""


def _shard_key(generation: str, number: int) -> str:
    return f"{KV_KEY}/{generation}/{number}"


def stored_head(kv: KeyValue, corpus: str) -> dict[str, Any] | None:
    """The saved head if it is usable for ``corpus`` (the changes feed it was taken from)."""
    head = kv.get(KV_KEY)
    if not isinstance(head, dict) or head.get("corpus") != corpus or not isinstance(head.get("token"), str):
        return None
    if head.get("fields") != list(FIELDS) or not isinstance(head.get("shards"), int) \
            or not isinstance(head.get("folders"), list) or not isinstance(head.get("generation"), str):
        return None
    return head


def stored_rows(kv: KeyValue, head: dict[str, Any]) -> Iterator[list[Row]]:
    """The saved rows, a shard at a time (``ShardMissing`` when one is gone)."""
    for number in range(int(head["shards"])):
        page = kv.get(_shard_key(str(head["generation"]), number))
        if not isinstance(page, list):
            raise ShardMissing(_shard_key(str(head["generation"]), number))
        yield [row for row in page if isinstance(row, list) and len(row) == len(FIELDS)]


def save(kv: KeyValue, pages: Iterable[list[Row]], *, corpus: str, token: str, folders: list[str]) -> None:
    """Keep the rows of ``pages`` with ``token`` for the next run (see the module's note)."""
    generation = uuid.uuid4().hex
    count = 0
    for count, page in enumerate(pages, start=1):
        kv.set(_shard_key(generation, count - 1), page)
    head = {"corpus": corpus, "token": token, "fields": list(FIELDS), "folders": folders,
            "generation": generation, "shards": count}

    def switch(old: Any) -> dict[str, Any]:
        retired = list(old.get("retired") or []) if isinstance(old, dict) else []
        if isinstance(old, dict) and isinstance(old.get("generation"), str) and isinstance(old.get("shards"), int):
            retired.append([old["generation"], old["shards"]])
        return {**head, "retired": retired}

    retired = kv.update(KV_KEY, switch)["retired"]
    for replaced, shards in retired:
        for number in range(int(shards)):
            kv.delete(_shard_key(str(replaced), number))
    done = {str(replaced) for replaced, _ in retired}
    kv.update(KV_KEY, lambda now: {**now, "retired": [r for r in now.get("retired") or [] if str(r[0]) not in done]}
              if isinstance(now, dict) else now)
