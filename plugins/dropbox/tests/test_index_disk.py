"""The folder index keeps its entries on disk: memory does not grow with the files of the folder,
and a later run still answers from what an earlier one saved, with no listing."""

from __future__ import annotations

import json
import logging
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest
from invoicesync_dropbox import index_table
from invoicesync_dropbox.index import KV_KEY, FolderIndex


class _KV:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return json.loads(self.values[key]) if key in self.values else default

    def set(self, key: str, value: Any) -> None:
        self.values[key] = json.dumps(value)

    def delete(self, key: str) -> None:
        self.values.pop(key, None)

    def update(self, key: str, fn: Callable[[Any], Any], default: Any = None) -> Any:
        value = fn(self.get(key, default))
        self.set(key, value)
        return value


class _Ctx:
    def __init__(self, kv: _KV) -> None:
        self.kv = kv
        self.log = logging.getLogger("test")


class _Client:
    """An empty folder: every listing and catch-up answers no entries."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def call(self, route: str, arg: Any, idempotent: bool = False) -> dict[str, Any]:
        self.calls.append(route)
        return {"entries": [], "cursor": f"cursor-{len(self.calls)}", "has_more": False}

    def get_metadata(self, path: str) -> Any:
        self.calls.append("files/get_metadata")
        return None


def _path(n: int) -> str:
    return f"/Invoices/Acme BV/2026/purchase/2026-01-{n % 28 + 1:02d}_Supplier NV_INV-{n}.pdf"


def _answer(n: int) -> str:
    """A commit's FileMetadata as Dropbox answers it (no ``.tag``)."""
    path = _path(n)
    return json.dumps({"name": path.rsplit("/", 1)[1], "id": f"id:{n:022d}", "path_display": path,
                       "path_lower": path.lower(), "rev": f"{n:015x}", "size": 123456,
                       "content_hash": f"{n:064x}", "client_modified": "2026-01-01T00:00:00Z",
                       "server_modified": "2026-01-01T00:00:00Z", "is_downloadable": True})


def test_noted_writes_leave_next_to_nothing_in_memory() -> None:
    """2,000 confirmed writes: a row per file in memory was ~1 KB a file; on disk, next to nothing."""
    client, index = _Client(), FolderIndex("/Invoices", _Ctx(_KV()))  # type: ignore[arg-type]
    try:
        assert index.lookup(client, _path(0)) is None  # listed (empty) before the run's writes
        answers = [_answer(n) for n in range(2000)]
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for text in answers:
            index.record(json.loads(text))
        kept = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        assert kept / len(answers) < 50, f"{kept / len(answers):.0f} bytes per file"
        found = index.lookup(client, _path(1234))
        assert found is not None and found["content_hash"] == f"{1234:064x}" and found[".tag"] == "file"
        assert client.calls == ["files/list_folder"]
    finally:
        index.close()


def test_a_restart_answers_from_the_saved_shards_without_listing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index_table, "SHARD_ROWS", 7)
    kv, client = _KV(), _Client()
    first = FolderIndex("/Invoices", _Ctx(kv))  # type: ignore[arg-type]
    first.lookup(client, _path(0))
    for n in range(50):
        first.record(json.loads(_answer(n)))
    first._apply({"path_lower": _path(3).lower(), ".tag": "deleted"})  # as a catch-up reports it
    first.close()
    stored = kv.get(KV_KEY)
    assert stored["shards"] == 7 and "rows" not in stored  # 49 rows, 7 a shard, none in the head
    for _ in range(2):  # runs after it: one catch-up each, every file still known
        client.calls.clear()
        later = FolderIndex("/Invoices", _Ctx(kv))  # type: ignore[arg-type]
        try:
            found = later.lookup(client, _path(42))
            assert found is not None and found["rev"] == f"{42:015x}"
            assert later.lookup(client, _path(3)) is None
            assert client.calls == ["files/list_folder/continue"]
        finally:
            later.close()
    shard_keys = [key for key in kv.values if key.startswith(KV_KEY + "/")]
    assert len(shard_keys) == 7  # the previous save's shards are gone


def test_a_deleted_folder_takes_only_its_own_entries() -> None:
    client, index = _Client(), FolderIndex("/Invoices", _Ctx(_KV()))  # type: ignore[arg-type]
    try:
        index.lookup(client, "/Invoices/a/x.pdf")
        for path in ("/Invoices/a/x.pdf", "/Invoices/a/b/y.pdf", "/Invoices/a b/z.pdf", "/Invoices/a0.pdf"):
            index.record({"path_display": path, "path_lower": path.lower(), "id": path})
        index._apply({".tag": "deleted", "path_lower": "/invoices/a"})
        assert index.lookup(client, "/Invoices/a/x.pdf") is None
        assert index.lookup(client, "/Invoices/a/b/y.pdf") is None
        assert index.lookup(client, "/Invoices/a b/z.pdf") is not None
        assert index.lookup(client, "/Invoices/a0.pdf") is not None
    finally:
        index.close()


def test_an_index_saved_whole_as_rows_is_still_read() -> None:
    """The head as the release before shards saved it: caught up from its cursor, not listed again."""
    kv, client = _KV(), _Client()
    row = index_table.row_of({".tag": "file", **json.loads(_answer(5))})
    kv.set(KV_KEY, {"root": "/Invoices", "cursor": "old", "fields": list(index_table.KEPT), "rows": [list(row)]})
    index = FolderIndex("/Invoices", _Ctx(kv))  # type: ignore[arg-type]
    try:
        found = index.lookup(client, _path(5))
        assert found is not None and found["id"] == f"id:{5:022d}"
        assert client.calls == ["files/list_folder/continue"]
    finally:
        index.close()
    assert kv.get(KV_KEY)["shards"] == 1


def _table(paths: range) -> index_table.EntryTable:
    table = index_table.EntryTable()
    for n in paths:
        meta = json.loads(_answer(n))
        table.put(meta["path_lower"], index_table.row_of(meta))
    return table


def _stored_paths(kv: _KV) -> set[str]:
    return {meta["path_lower"] for meta in index_table.stored_rows(kv, kv.get(KV_KEY))}


def test_saves_of_two_processes_at_once_never_leave_a_mixed_index(monkeypatch: pytest.MonkeyPatch) -> None:
    """Celery workers of one account save the index at the same time. With numbered slots both
    chose the same slot and wrote into each other's shards: the head then carried one worker's cursor
    over the other's entries, files it had written were missing, and the next run uploaded them
    again (the scale-out kill test found them written twice)."""
    monkeypatch.setattr(index_table, "SHARD_ROWS", 5)
    kv = _KV()
    index_table.save_shards(kv, _table(range(0, 20)), "/invoices", "cursor-0")
    older, newer = _table(range(0, 20)), _table(range(0, 30))  # the newer one saw 10 more files
    real_set = kv.set
    interleaved: list[str] = []

    def set_then_let_the_other_save(key: str, value: Any) -> None:
        real_set(key, value)
        if not interleaved and key.startswith(KV_KEY + "/"):  # the older save is mid-way: the newer runs whole
            interleaved.append(key)
            index_table.save_shards(kv, newer, "/invoices", "cursor-newer")

    monkeypatch.setattr(kv, "set", set_then_let_the_other_save)
    index_table.save_shards(kv, older, "/invoices", "cursor-older")
    head = kv.get(KV_KEY)
    expected = {json.loads(_answer(n))["path_lower"] for n in range(20 if head["cursor"] == "cursor-older" else 30)}
    assert interleaved and _stored_paths(kv) == expected, "a head must match its own shards exactly"
    shard_keys = {key for key in kv.values if key.startswith(KV_KEY + "/")}
    assert shard_keys == {f"{KV_KEY}/{head['generation']}/{n}" for n in range(head["shards"])}, "retired shards stay"


def test_a_reader_whose_shards_were_retired_lists_afresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index_table, "SHARD_ROWS", 5)
    kv, client = _KV(), _Client()
    index_table.save_shards(kv, _table(range(0, 20)), "/invoices", "cursor-0")
    head = kv.get(KV_KEY)
    rows = index_table.stored_rows(kv, head)
    next(rows)  # reading the first shard when another process saves and retires the rest
    index_table.save_shards(kv, _table(range(0, 25)), "/invoices", "cursor-1")
    with pytest.raises(index_table.ShardMissing):
        list(rows)
    # The index given that stale head lists the folder rather than answer from part of it.
    monkeypatch.setattr(kv, "get", lambda key, default=None: head if key == KV_KEY else _KV.get(kv, key, default))
    index = FolderIndex("/invoices", _Ctx(kv))  # type: ignore[arg-type]
    try:
        index.lookup(client, _path(1))
        assert client.calls == ["files/list_folder"]
    finally:
        index.close()


@pytest.mark.parametrize("where", [{"generation": "5f0c6a9e4b2d4c1e8a7b3d2f1e0c9b8a"}, {"slot": 1}],
                         ids=["generation", "numbered-slot"])
def test_an_index_saved_in_shards_by_an_earlier_release_is_read_then_retired(where: dict[str, Any]) -> None:
    """Homes keep indexes saved before the shards moved to core's ``kv_shards``: a head and shards
    in exactly the layout those releases wrote (by generation, or by numbered slot before that) are
    read without a listing, and the next save retires them in the same layout."""
    kv, client = _KV(), _Client()
    rows = [list(index_table.row_of({".tag": "file", **json.loads(_answer(n))})) for n in range(4)]
    name = str(where.get("generation", where.get("slot")))
    kv.set(KV_KEY, {"root": "/Invoices", "cursor": "old", "fields": list(index_table.KEPT), **where, "shards": 2,
                    "retired": []})
    kv.set(f"{KV_KEY}/{name}/0", rows[:2])
    kv.set(f"{KV_KEY}/{name}/1", rows[2:])
    index = FolderIndex("/Invoices", _Ctx(kv))  # type: ignore[arg-type]
    try:
        for n in range(4):
            found = index.lookup(client, _path(n))
            assert found is not None and found["id"] == f"id:{n:022d}"
        assert client.calls == ["files/list_folder/continue"]
    finally:
        index.close()
    head = kv.get(KV_KEY)
    assert head.keys() == {"root", "cursor", "fields", "generation", "shards", "retired"} and head["retired"] == []
    assert head["generation"] != name and head["cursor"] == "cursor-1"
    assert {key for key in kv.values if key.startswith(KV_KEY + "/")} == {f"{KV_KEY}/{head['generation']}/0"}
    assert {meta["id"] for meta in index_table.stored_rows(kv, head)} == {f"id:{n:022d}" for n in range(4)}
