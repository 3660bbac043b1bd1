"""The home's own blob store: small blobs inline in ``blobs/inline.sqlite``, larger ones spilled to
files; a home written by an older version (every blob a file) still reads; several threads and
processes share it; a killed writer leaves nothing visible; the new file is as private as the home."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from invoicesync.state import FolderBlobStore, HomeBlobStore, open_blob_store
from invoicesync.state._blobs import copy_blobs
from invoicesync.state._blobs_home import INLINE_FILE, INLINE_MAX
from invoicesync.testing.blobs import MiB, inline, leftovers, pattern, sha_of, visible


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def store(home: Path) -> HomeBlobStore:
    opened = open_blob_store(home, None)
    assert isinstance(opened, HomeBlobStore)
    return opened


def files(store: HomeBlobStore) -> list[str]:
    """The blobs kept as files in the shard folders."""
    return visible(store.folder)


def test_a_small_blob_is_one_row_of_the_inline_file_and_no_file(store: HomeBlobStore, home: Path) -> None:
    sha, size = store.write(iter([b"%PDF-1.4\n", b"x" * 5000]))
    assert size == 5009 and sha == sha_of(iter([b"%PDF-1.4\n", b"x" * 5000]))
    assert inline(store) == [sha] and files(store) == [] and leftovers(store) == []
    assert sorted(os.listdir(home / "blobs")) == sorted(["tmp", INLINE_FILE, f"{INLINE_FILE}-wal",
                                                         f"{INLINE_FILE}-shm"])
    assert store.exists(sha) and not store.exists("ab" * 32) and not store.exists("not hex")
    assert list(store.shas()) == [sha]
    with store.open(sha) as handle:
        handle.seek(-4, os.SEEK_END)
        assert handle.read() == b"xxxx" and handle.seek(0) == 0 and handle.read(8) == b"%PDF-1.4"
    assert [len(c) for c in store.iter_chunks(sha, 2000)] == [2000, 2000, 1009]
    assert open_blob_store(home, None).exists(sha)  # another opener (another process) sees it


@pytest.mark.parametrize("size, where", [(INLINE_MAX, "inline"), (INLINE_MAX + 1, "file"), (3 * MiB + 5, "file")])
def test_past_the_threshold_a_blob_spills_to_a_file(store: HomeBlobStore, size: int, where: str) -> None:
    for chunk in (4096, MiB):  # where a blob goes does not depend on how its source cuts it
        sha, written = store.write(pattern(size, seed=size, chunk=chunk))
        assert (sha, written) == (sha_of(pattern(size, seed=size)), size)
        assert (inline(store), files(store)) == (([sha], []) if where == "inline" else ([], [sha]))
        assert sha_of(store.iter_chunks(sha)) == sha and store.exists(sha)
        assert leftovers(store) == []


def test_the_store_lists_inline_blobs_and_files_page_after_page(
        store: HomeBlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("invoicesync.state._blobs_home._PAGE", 3)
    small = [store.write(pattern(100 + n, seed=n))[0] for n in range(10)]
    large = [store.write(pattern(INLINE_MAX + 10, seed=n))[0] for n in range(2)]
    listed = list(store.shas())
    assert len(listed) == 12 and sorted(listed) == sorted(small + large)
    assert inline(store) == sorted(small) and files(store) == sorted(large)


def test_a_large_blob_streams_through_in_bounded_memory(store: HomeBlobStore) -> None:
    size = 64 * MiB
    tracemalloc.start()
    try:
        sha, written = store.write(pattern(size))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert written == size and files(store) == [sha] and inline(store) == []
    # What is held before the blob turns out to be large, plus a chunk or two in flight (pattern()
    # makes 1 MiB pieces out of a 1 MiB block): not the blob.
    assert peak < INLINE_MAX + 4 * MiB


def test_a_home_written_by_an_older_version_reads_as_before(home: Path) -> None:
    old = FolderBlobStore(home / "blobs")  # the layout before: every blob a file
    small, _ = old.write(iter([b"an old small PDF"]))
    large, _ = old.write(pattern(2 * MiB))
    store = open_blob_store(home, None)
    assert isinstance(store, HomeBlobStore)
    assert store.exists(small) and store.exists(large)
    assert b"".join(store.iter_chunks(small)) == b"an old small PDF"
    with store.open(small) as handle:
        assert handle.read() == b"an old small PDF"
    assert store.write(iter([b"an old small PDF"]))[0] == small  # already there: not copied inline
    new, _ = store.write(iter([b"a new one"]))
    assert inline(store) == [new] and files(store) == sorted([small, large])
    assert sorted(store.shas()) == sorted([small, large, new])


def test_copying_the_blobs_elsewhere_copies_the_inline_ones_too(store: HomeBlobStore, tmp_path: Path) -> None:
    small = [store.write(pattern(1000, seed=n))[0] for n in range(5)]
    large = store.write(pattern(INLINE_MAX * 2))[0]
    assert len(inline(store)) == 5
    target = open_blob_store(tmp_path / "home", (tmp_path / "nas").as_uri())
    assert copy_blobs(store, target) == {"copied": 6, "present": 0, "damaged": 0}
    assert visible(target) == sorted([*small, large])
    assert all(sha_of(target.iter_chunks(sha)) == sha for sha in [*small, large])


def test_threads_writing_the_same_and_different_content_at_once(store: HomeBlobStore) -> None:
    start = threading.Barrier(8)
    results: list[tuple[str, int]] = []
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            start.wait()
            for round_ in range(20):
                same = store.write(pattern(5000, seed=round_))  # every thread the same
                own = store.write(pattern(3000, seed=1000 + n * 100 + round_))  # its own
                assert sha_of(store.iter_chunks(own[0])) == own[0]
                results.extend([same, own])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(results) == 320 and len(inline(store)) == 20 + 160 == len(set(results))
    assert files(store) == [] and sorted(store.shas()) == sorted({sha for sha, _ in results})


PROCESS = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from invoicesync.testing.blobs import pattern, sha_of
    from invoicesync.state import open_blob_store
    store = open_blob_store(Path(sys.argv[1]), None)
    me, go = int(sys.argv[2]), Path(sys.argv[3])
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.01)
    for n in range(150):
        shared, _ = store.write(pattern(2000 + n, seed=n))  # both processes write these
        own, _ = store.write(pattern(1500, seed=10_000 * (me + 1) + n))
        for sha in (shared, own):  # and read back what either wrote
            assert sha_of(store.iter_chunks(sha)) == sha, sha
    print("done", flush=True)
""")


@pytest.mark.slow
def test_two_processes_write_and_read_the_same_home_at_once(store: HomeBlobStore, home: Path) -> None:
    go = home / "go"
    processes = [subprocess.Popen([sys.executable, "-c", PROCESS, str(home), str(me), str(go)],
                                  stdout=subprocess.PIPE, text=True) for me in range(2)]
    for process in processes:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    go.touch()
    outputs = [p.communicate(timeout=300)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0] and all("done" in out for out in outputs)
    shared = {sha_of(pattern(2000 + n, seed=n)) for n in range(150)}
    own = {sha_of(pattern(1500, seed=10_000 * (me + 1) + n)) for me in range(2) for n in range(150)}
    assert inline(store) == sorted(shared | own) and files(store) == []


KILLED = textwrap.dedent("""
    import os, signal, sys, time
    from pathlib import Path
    from invoicesync.state import open_blob_store
    store = open_blob_store(Path(sys.argv[1]), None)

    def at(statement):
        if statement.strip().upper() == "COMMIT":  # the row is written, the transaction not committed
            print("committing", flush=True)
            time.sleep(60)

    store._writable().set_trace_callback(at)
    store.write(iter([b"%PDF-1.4 never committed"]))
""")


@pytest.mark.slow
def test_a_writer_killed_before_its_commit_leaves_nothing_visible(store: HomeBlobStore, home: Path) -> None:
    kept, _ = store.write(iter([b"written before"]))
    writer = subprocess.Popen([sys.executable, "-c", KILLED, str(home)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "committing"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.communicate(timeout=30)
    lost = sha_of(iter([b"%PDF-1.4 never committed"]))
    assert visible(store) == [kept] and not store.exists(lost) and leftovers(store) == []
    assert store.clean_tmp() == 0
    # the killed writer held the write lock: it is released, and the same content writes whole
    assert store.write(iter([b"%PDF-1.4 never committed"])) == (lost, 24)
    assert visible(open_blob_store(home, None)) == sorted([kept, lost])


def test_the_inline_file_is_as_private_as_the_home(home: Path) -> None:
    previous = os.umask(0o022)
    try:
        store = open_blob_store(home, None)
        store.write(iter([b"private"]))
    finally:
        os.umask(previous)
    for name in (INLINE_FILE, f"{INLINE_FILE}-wal", f"{INLINE_FILE}-shm"):
        assert stat.S_IMODE((home / "blobs" / name).stat().st_mode) == 0o600, name


def test_a_home_this_user_may_only_read_still_reads(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = open_blob_store(home, None)
    assert isinstance(writer, HomeBlobStore)
    small, _ = writer.write(iter([b"read me"]))
    large, _ = writer.write(pattern(INLINE_MAX + 1))
    writer.close()
    # as another user would (and as root cannot be made to, by modes): nothing here is writable
    monkeypatch.setattr("invoicesync.state._blobs_home.os.access", lambda path, mode: not mode & os.W_OK)
    def unchanged() -> dict[str, int]:  # (SQLite itself may make a -wal and -shm to read a WAL file)
        return {p.name: p.stat().st_mtime_ns for p in (home / "blobs").iterdir() if p.suffix == ".sqlite"
                or "sqlite" not in p.name}

    before = unchanged()
    reader = open_blob_store(home, None)
    assert b"".join(reader.iter_chunks(small)) == b"read me" and reader.exists(large)
    assert sorted(reader.shas()) == sorted([small, large])
    assert unchanged() == before


class _Failing:
    """The writing connection, whose inserts wait for a go and then fail as a full disk would."""

    def __init__(self, db: sqlite3.Connection, go: threading.Event) -> None:
        self.db, self.go = db, go
        self.batches: list[int] = []

    def execute(self, sql: str, *args: object) -> object:
        return self.db.execute(sql, *args)

    def executemany(self, sql: str, rows: Iterator[tuple[bytes, bytes]]) -> None:
        self.batches.append(len(list(rows)))
        self.go.wait(30)
        raise sqlite3.OperationalError("database or disk is full")


def test_threads_share_a_commit_and_all_learn_when_it_fails(
        store: HomeBlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from invoicesync.pipeline._control import is_disk_full

    go = threading.Event()
    failing = _Failing(store._writable(), go)
    monkeypatch.setattr(store, "_writable", lambda: failing)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            store.write(pattern(1000, seed=n))
        except BaseException as exc:  # noqa: BLE001 - checked below
            errors.append(exc)

    first = threading.Thread(target=writer, args=(0,))
    first.start()
    while not failing.batches:  # the first commit is under way, held
        threading.Event().wait(0.01)
    others = [threading.Thread(target=writer, args=(n,)) for n in range(1, 8)]
    for thread in others:
        thread.start()
    while len(store._queue) < 7:  # the other seven wait for the next commit
        threading.Event().wait(0.01)
    go.set()
    for thread in [first, *others]:
        thread.join()
    assert failing.batches == [1, 7]  # one commit for the first, one for the seven queued meanwhile
    assert len(errors) == 8 and all(is_disk_full(exc) for exc in errors)
    assert inline(store) == [] and files(store) == []
    monkeypatch.undo()
    sha, _ = store.write(pattern(1000, seed=3))  # the store goes on
    assert inline(store) == [sha]
