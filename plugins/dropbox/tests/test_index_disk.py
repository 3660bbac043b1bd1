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
