"""``invoicesync.kv_shards``: a large value kept in kv shards, saved by several processes at once.

On a real account kv of both state backends (SQLite and PostgreSQL). Two saves that interleave
leave a head whose shards all exist and match it; a reader of a retired generation gets
``ShardMissing``; retired shards are deleted; heads an older release wrote in its own shape are
still read and retired through ``locate``."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from invoicesync.kv_shards import Generation, ShardedValue, ShardMissing, generation_of, shard_key
from invoicesync.state._sql import SqlStore

KEY = "big-value"


@pytest.fixture
def kv(open_store: Callable[..., SqlStore]) -> Any:
    return open_store().kv("acct")


def _keys(kv: Any) -> set[str]:
    rows = kv._store._all("SELECT key FROM kv WHERE account = ?", ("acct",))
    return {row["key"] for row in rows}


def _pages(rows: range, size: int = 3) -> Iterator[list[Any]]:
    numbers = list(rows)
    for start in range(0, len(numbers), size):
        yield [[n, f"row {n}"] for n in numbers[start:start + size]]


def _read(store: ShardedValue, head: Any) -> list[int]:
    return [row[0] for page in store.pages(head) for row in page]


def test_a_save_is_read_back_under_the_callers_fields(kv: Any) -> None:
    store = ShardedValue(kv, KEY)
    assert store.head() is None and _read(store, None) == []
    returned = store.save(_pages(range(10)), {"cursor": "c1"})
    head = store.head()
    assert head == {**returned, "retired": []} and head["cursor"] == "c1" and head["shards"] == 4
    assert _read(store, head) == list(range(10))
    assert _keys(kv) == {KEY, *(shard_key(KEY, head["generation"], n) for n in range(4))}


def test_retired_shards_are_deleted_and_their_reader_gets_shard_missing(kv: Any) -> None:
    store = ShardedValue(kv, KEY)
    store.save(_pages(range(10)), {"cursor": "c1"})
    old = store.head()
    reading = store.pages(old)
    next(reading)  # mid-read, another process saves and retires what we read
    store.save(_pages(range(5)), {"cursor": "c2"})
    with pytest.raises(ShardMissing):
        list(reading)
    with pytest.raises(ShardMissing):
        _read(store, old)
    new = store.head()
    assert new["retired"] == [] and new["cursor"] == "c2" and _read(store, new) == list(range(5))
    assert _keys(kv) == {KEY, *(shard_key(KEY, new["generation"], n) for n in range(new["shards"]))}


def test_two_saves_at_once_leave_a_head_that_matches_its_own_shards(kv: Any) -> None:
    """Two workers of one account save at once: the second runs whole while the first is between
    its shards, then the first finishes. Whichever head wins, every shard it names exists and
    holds that save's rows, and no retired shard is left."""
    store = ShardedValue(kv, KEY)
    store.save(_pages(range(100, 106)), {"cursor": "c0"})
    real_set = kv.set
    interleaved: list[str] = []

    def set_then_let_the_other_save(key: str, value: Any) -> None:
        real_set(key, value)
        if not interleaved and key.startswith(KEY + "/"):
            interleaved.append(key)
            other = threading.Thread(target=ShardedValue(kv, KEY).save, args=(_pages(range(20)), {"cursor": "b"}))
            other.start()  # its own thread: a second worker, on its own connection where the backend has them
            other.join()

    kv.set = set_then_let_the_other_save
    store.save(_pages(range(10)), {"cursor": "a"})
    kv.set = real_set
    head = store.head()
    assert interleaved and head["retired"] == []
    assert _read(store, head) == (list(range(10)) if head["cursor"] == "a" else list(range(20)))
    assert _keys(kv) == {KEY, *(shard_key(KEY, head["generation"], n) for n in range(head["shards"]))}


def test_a_save_whose_cleanup_died_is_cleaned_up_by_the_next(kv: Any) -> None:
    """A save that died after switching the head left its retired list: the next save deletes
    those shards too."""
    store = ShardedValue(kv, KEY)
    kv.set(shard_key(KEY, "dead", 0), [[1, "x"]])
    kv.set(KEY, {"cursor": "c", "generation": "g1", "shards": 1, "retired": [["dead", 1]]})
    kv.set(shard_key(KEY, "g1", 0), [[2, "y"]])
    store.save(_pages(range(2)), {"cursor": "d"})
    head = store.head()
    assert head["retired"] == [] and _keys(kv) == {KEY, shard_key(KEY, head["generation"], 0)}


def test_heads_of_an_older_shape_are_read_and_retired_through_locate(kv: Any) -> None:
    def locate(head: Any) -> Generation | None:
        if isinstance(head, dict) and isinstance(head.get("slot"), int):
            return Generation(str(head["slot"]), head["shards"])
        return generation_of(head)

    kv.set(KEY, {"cursor": "old", "slot": 1, "shards": 2})
    kv.set(f"{KEY}/1/0", [[1, "a"]])
    kv.set(f"{KEY}/1/1", [[2, "b"]])
    store = ShardedValue(kv, KEY, locate=locate)
    assert _read(store, store.head()) == [1, 2]
    store.save(_pages(range(3)), {"cursor": "new"})
    head = store.head()
    assert _read(store, head) == [0, 1, 2] and _keys(kv) == {KEY, shard_key(KEY, head["generation"], 0)}


def test_the_store_keeps_its_own_head_fields(kv: Any) -> None:
    with pytest.raises(ValueError, match="generation"):
        ShardedValue(kv, KEY).save(_pages(range(1)), {"generation": "mine"})
    assert kv.get(KEY) is None
