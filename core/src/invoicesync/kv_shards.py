"""A value too large for one ``ctx.kv`` entry (a folder index, saved listings), kept in shards.

A save writes the pages under a *generation* of its own (a random name) at
``{key}/{generation}/{number}``, then switches the *head* (``kv[key]``: the caller's fields plus
``generation`` and ``shards``, the shard count) in one atomic ``kv.update`` that also lists the
generation it replaced under ``retired``, then deletes the retired generations' shards and drops
them from ``retired``. Several processes (Celery workers of one account) may save at once: none
ever writes into shards another head points to, so whichever head wins matches its own shards. A
reader whose shards were deleted under it (a newer save retired them) gets ``ShardMissing`` and
should rebuild the value from its source, never use part of it. A save that dies midway leaves the
previous head and its shards whole (its own shards are strays nobody reads).

Neither saving nor reading holds more than one page in memory (``docs/write-a-connector.md``)::

    from invoicesync.kv_shards import ShardedValue, ShardMissing

    store = ShardedValue(ctx.kv, "folder-index")
    store.save(table.pages(1000), {"cursor": cursor})      # pages: any iterable of JSON lists
    head = store.head()
    try:
        for page in store.pages(head):                     # one shard at a time
            table.load(page)
        cursor = head["cursor"]
    except ShardMissing:                                   # a newer save retired them
        table.clear()                                      # list afresh
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from .state import KeyValue

__all__ = ["Generation", "ShardMissing", "ShardedValue", "generation_of", "shard_key"]

#: Head fields the store writes itself; the caller's head fields must not use them.
RESERVED = frozenset({"generation", "shards", "retired"})


class ShardMissing(Exception):
    """A shard of the head being read is gone: a newer save retired it while we read."""


class Generation(NamedTuple):
    """Where a head's pages are: ``shards`` shards, numbered from 0, under the generation ``name``."""

    name: str
    shards: int


def shard_key(key: str, generation: str, number: int) -> str:
    """The kv key of shard ``number`` of ``generation`` of the value kept at ``key``."""
    return f"{key}/{generation}/{number}"


def generation_of(head: Any) -> Generation | None:
    """The shards a head points to (``None``: no head, or not one this module wrote)."""
    if not isinstance(head, dict) or not isinstance(head.get("generation"), str) \
            or not isinstance(head.get("shards"), int):
        return None
    return Generation(head["generation"], head["shards"])


class ShardedValue:
    """The value kept at ``key`` of ``kv``, in shards (see the module's note).

    ``locate`` tells where a head's shards are; pass your own to keep reading heads an older
    release of your plugin wrote in another shape (it also names what a save retires).
    """

    def __init__(self, kv: KeyValue, key: str, *, locate: Callable[[Any], Generation | None] = generation_of) -> None:
        self.kv = kv
        self.key = key
        self._locate = locate

    def head(self) -> Any:
        """The stored head as saved (``None`` if nothing was): check the fields you need."""
        return self.kv.get(self.key)

    def pages(self, head: Any) -> Iterator[list[Any]]:
        """The pages of ``head``'s generation, one shard at a time; none if ``head`` points to no
        shards. Raises ``ShardMissing`` when a shard is gone (the head was retired)."""
        located = self._locate(head)
        if located is None:
            return
        for number in range(located.shards):
            name = shard_key(self.key, located.name, number)
            page = self.kv.get(name)
            if not isinstance(page, list):
                raise ShardMissing(name)
            yield page

    def save(self, pages: Iterable[list[Any]], fields: Mapping[str, Any]) -> dict[str, Any]:
        """Write ``pages`` (JSON lists) under a new generation and make the head ``fields`` plus
        ``generation`` and ``shards`` point to them; returns that head (without ``retired``)."""
        if RESERVED & set(fields):
            raise ValueError(f"head fields {sorted(RESERVED & set(fields))} are the store's own")
        generation = uuid.uuid4().hex
        count = 0
        for count, page in enumerate(pages, start=1):
            self.kv.set(shard_key(self.key, generation, count - 1), page)
        head = {**fields, "generation": generation, "shards": count}

        def switch(old: Any) -> dict[str, Any]:
            retired = list(old.get("retired") or []) if isinstance(old, dict) else []
            replaced = self._locate(old)
            if replaced is not None:
                retired.append([replaced.name, replaced.shards])
            return {**head, "retired": retired}

        retired = self.kv.update(self.key, switch)["retired"]
        done: set[str] = set()
        for entry in retired:
            if not isinstance(entry, list) or len(entry) != 2:
                continue
            replaced, shards = str(entry[0]), int(entry[1])
            for number in range(shards):
                self.kv.delete(shard_key(self.key, replaced, number))
            done.add(replaced)
        self.kv.update(self.key, lambda now: {**now, "retired": [
            r for r in now.get("retired") or [] if not (isinstance(r, list) and len(r) == 2 and str(r[0]) in done)]}
            if isinstance(now, dict) else now)
        return head
