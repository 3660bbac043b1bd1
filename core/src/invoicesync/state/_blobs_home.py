"""The home's own blob store (the default): small blobs inline in one SQLite file, larger ones as files.

Most invoice files are a few KB to a few hundred KB. As one file each, every blob cost the kernel a
new inode, a shard folder, an fsync, a link and an unlink: a fifth of a sync's CPU. Here a blob of
at most :data:`INLINE_MAX` bytes is one row of ``blobs/inline.sqlite`` (WAL), written by one
transaction; a larger one spills, as it streams, into the folder store beside it
(``blobs/<2 hex>/<62 hex>``), which also still holds every blob an older version wrote there: reads
look inline first, then in the folder.

The guarantees are the folder store's: keyed by sha256; nothing half-written visible (a row is
committed whole or not at all: a killed writer's transaction is rolled back by the next opener; a
spilled blob goes through ``tmp/`` and ``link(2)`` as before); writing content that is there is a
no-op (``INSERT OR IGNORE``); memory per writer stays below ``INLINE_MAX`` plus one chunk whatever
the size; several threads and several processes of one machine (``serve`` beside a CLI sync, the
Celery workers of one home) share the file through SQLite's locks and its busy timeout.

Only the home's own store is kept this way: a shared folder (``file://``) or S3 serves several
machines, and SQLite over a network file system does not lock reliably.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from ._blobs import ABANDONED_AFTER, CHUNK, PutMixin
from ._blobs_folder import FolderBlobStore

#: The largest blob kept inline. Below it a row costs a WAL append and one fsync per commit, where
#: a file costs an inode, a link, an unlink, and its own fsync; above it the row's second write (the
#: checkpoint copies WAL pages into the database) and reading it whole into memory would cost more
#: than the file's fixed price, which large files amortise. 512 KiB keeps nearly every invoice PDF
#: and UBL inline (most are a few KB to a few hundred KB), keeps the WAL between checkpoints small,
#: and is also what a writer holds in memory at most before it knows which way a blob goes: 8 fetch
#: threads hold 4 MiB at worst, whatever the sizes of the files.
INLINE_MAX = 512 * 1024
#: The file, in the home's ``blobs/``; its ``-wal`` and ``-shm`` sit beside it.
INLINE_FILE = "inline.sqlite"
#: The database's page size (see :meth:`HomeBlobStore._writable`).
PAGE_SIZE = 16 * 1024
#: How much WAL collects before a checkpoint copies it into the database (SQLite's default is 1000
#: pages), and what the WAL is cut back to after one.
_WAL_BYTES = 16 * 1024 * 1024
#: Waiting for another process's write transaction (one row, so milliseconds) before failing.
_BUSY_TIMEOUT = 60.0
_SCHEMA = """
CREATE TABLE IF NOT EXISTS blobs (
    sha256 BLOB NOT NULL UNIQUE,  -- the 32 bytes of the digest
    data BLOB NOT NULL
)
"""
#: How many keys ``shas`` reads per query: no read transaction stays open while the caller works.
_PAGE = 1000


class HomeBlobStore(PutMixin):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = str(root)
        self.folder = FolderBlobStore(root)
        self.db_path = os.path.join(str(root), INLINE_FILE)
        # One connection writes, one reads, each behind its own lock: the fetch threads' commits
        # queue here rather than in SQLite's busy handler (which sleeps in steps of milliseconds), and
        # readers (the dashboard, an export, the pushers) never wait for a writer's fsync: in WAL mode
        # a reader sees the last commit without blocking on the one being written.
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._pid = os.getpid()
        #: Rows waiting for the next commit, and whether one is under way (see :meth:`_commit`).
        self._queued = threading.Condition(threading.Lock())
        self._queue: list[_Row] = []
        self._committing = False
        if os.access(root, os.W_OK | os.X_OK):
            with self._write_lock:
                self._writable()  # creates the file (private) and its table now, not in a fetch thread

    # -- connections ---------------------------------------------------------------------------

    def _forked(self) -> None:
        """A forked child does not use its parent's connections (SQLite forbids it): it opens its own."""
        if self._pid != os.getpid():
            self._pid, self._writer, self._reader = os.getpid(), None, None

    def _writable(self) -> sqlite3.Connection:
        self._forked()
        if self._writer is None:
            # Created private before SQLite opens it: SQLite would make it 0644 less the umask, and
            # gives its -wal and -shm files the database file's mode.
            os.close(os.open(self.db_path, os.O_RDWR | os.O_CREAT, 0o600))
            db = sqlite3.connect(self.db_path, check_same_thread=False, isolation_level=None,
                                 timeout=_BUSY_TIMEOUT)
            # Before the first table (it fixes the page size for good): a row takes one WAL frame
            # per page, each written with two syscalls and copied again by the checkpoint; with
            # 4 KiB pages a 300 KiB PDF was ~150 writes, as many syscalls as the file it replaced
            # cost. A blob's last overflow page is half empty on average (8 KiB here), about what
            # a file's last 4 KiB block and inode took.
            db.execute(f"PRAGMA page_size={PAGE_SIZE}")
            db.execute("PRAGMA journal_mode=WAL")
            # FULL: the WAL is fsynced at every commit, so a blob whose write returned survives a
            # power cut, not only a crash. The state (state.db, synchronous=NORMAL, or PostgreSQL)
            # commits a document naming the blob right after; under NORMAL here a power cut could
            # keep that commit and lose the blob's, leaving a document whose file is gone. One WAL
            # fsync per blob is what the folder store paid too (one per file), without the inode.
            db.execute("PRAGMA synchronous=FULL")
            # After a checkpoint the WAL is cut back to this, rather than staying as large as the
            # largest burst of blobs between two checkpoints.
            db.execute(f"PRAGMA journal_size_limit={_WAL_BYTES}")
            db.execute(f"PRAGMA wal_autocheckpoint={_WAL_BYTES // PAGE_SIZE}")
            db.execute(_SCHEMA)
            self._writer = db
        return self._writer

    def _readable(self) -> sqlite3.Connection | None:
        """The reading connection; None while there is no inline file (a read-only home of an older
        version): then every blob is in the folder."""
        self._forked()
        if self._reader is None:
            if not os.path.exists(self.db_path):
                return None
            if os.access(self.root, os.W_OK | os.X_OK) and os.access(self.db_path, os.W_OK):
                if self._writer is None:
                    with self._write_lock:  # makes sure of the WAL mode and the table first
                        self._writable()
                db = sqlite3.connect(self.db_path, check_same_thread=False, isolation_level=None,
                                     timeout=_BUSY_TIMEOUT)
            else:
                db = _read_only(self.db_path)
            self._reader = db
        return self._reader

    def close(self) -> None:
        with self._read_lock:  # taken alone: a first read takes the write lock inside it
            if self._reader is not None:
                self._reader.close()
                self._reader = None
        with self._write_lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None

    # -- reading -------------------------------------------------------------------------------

    def _inline(self, sha256: str) -> bytes | None:
        try:
            key = bytes.fromhex(sha256)
        except ValueError:
            return None
        with self._read_lock:
            db = self._readable()
            if db is None:
                return None
            row = db.execute("SELECT data FROM blobs WHERE sha256 = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def _inline_exists(self, sha256: str) -> bool:
        try:
            key = bytes.fromhex(sha256)
        except ValueError:
            return False
        with self._read_lock:
            db = self._readable()
            return db is not None and db.execute("SELECT 1 FROM blobs WHERE sha256 = ?", (key,)).fetchone() is not None

    def exists(self, sha256: str) -> bool:
        return self._inline_exists(sha256) or self.folder.exists(sha256)

    def open(self, sha256: str) -> BinaryIO:
        data = self._inline(sha256)
        if data is None:
            return self.folder.open(sha256)
        return io.BytesIO(data)  # at most INLINE_MAX bytes

    def iter_chunks(self, sha256: str, size: int = CHUNK) -> Iterator[bytes]:
        data = self._inline(sha256)
        if data is None:
            yield from self.folder.iter_chunks(sha256, size)
            return
        if len(data) <= size:
            if data:
                yield data
            return
        view = memoryview(data)
        for start in range(0, len(data), size):
            yield bytes(view[start:start + size])

    def shas(self) -> Iterator[str]:
        """Inline blobs, then the folder's. Content is in one place or the other (a small blob
        already in the folder, from an older version, is not written inline again)."""
        after = b""
        while True:
            with self._read_lock:
                db = self._readable()
                if db is None:
                    break
                page = [row[0] for row in db.execute(
                    "SELECT sha256 FROM blobs WHERE sha256 > ? ORDER BY sha256 LIMIT ?", (after, _PAGE))]
            yield from (bytes(key).hex() for key in page)
            if len(page) < _PAGE:
                break
            after = page[-1]
        yield from self.folder.shas()

    # -- writing -------------------------------------------------------------------------------

    def write(self, chunks: Iterable[bytes]) -> tuple[str, int]:
        """Stream ``chunks`` in; return ``(sha256, size)``. Up to :data:`INLINE_MAX` bytes are held
        to be written as one row; past it they and the rest stream into the folder store."""
        digest = hashlib.sha256()
        pending = bytearray()
        stream = iter(chunks)
        for chunk in stream:
            pending += chunk
            if len(pending) > INLINE_MAX:
                held = [pending]
                del pending  # the folder store takes what was held as its first chunk, then lets go
                return self.folder.write(_after(held, stream))
            digest.update(chunk)
        sha = digest.hexdigest()
        if self.folder.exists(sha):  # written as a file by an older version: one copy is enough
            return sha, len(pending)
        self._commit(_Row(bytes.fromhex(sha), pending))
        return sha, len(pending)

    def _commit(self, row: _Row) -> None:
        """Commit ``row``, in one transaction with the rows other threads are committing meanwhile.

        Group commit: a writer that finds a commit under way queues its row and waits; when that
        commit ends, one of the waiters commits every row queued (its own among them) in one
        transaction, one fsync. The rows queued are at most one per writing thread, so memory stays
        bounded as before; each ``write`` still returns only once its own row is durable."""
        with self._queued:
            self._queue.append(row)
            while not row.done:
                if self._committing:
                    self._queued.wait()
                    continue
                batch, self._queue = self._queue, []
                self._committing = True
                break
            else:
                if row.error is not None:  # another thread's commit of this row failed
                    raise OSError(errno.EIO, f"writing blobs into {self.db_path} failed: {row.error}") from row.error
                return
        error: BaseException | None = None
        try:
            with self._write_lock:
                db = self._writable()
                db.execute("BEGIN IMMEDIATE")
                try:
                    db.executemany("INSERT OR IGNORE INTO blobs (sha256, data) VALUES (?, ?)",
                                   ((queued.key, queued.data) for queued in batch))
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
        except BaseException as exc:
            error = exc
            raise
        finally:
            with self._queued:
                for queued in batch:
                    queued.done, queued.error, queued.data = True, error, b""
                self._committing = False
                self._queued.notify_all()

    def clean_tmp(self, older_than: float = ABANDONED_AFTER) -> int:
        """What killed writers left: spilled blobs' temp files (a killed inline write leaves an
        uncommitted transaction, which SQLite rolls back by itself)."""
        return self.folder.clean_tmp(older_than)


class _Row:
    """A blob waiting for a commit, and how that commit went."""

    __slots__ = ("data", "done", "error", "key")

    def __init__(self, key: bytes, data: bytes | bytearray) -> None:
        self.key, self.data = key, data
        self.done = False
        self.error: BaseException | None = None


def _after(held: list[bytearray], rest: Iterator[bytes]) -> Iterator[bytes]:
    yield held.pop()  # type: ignore[misc]  # a bytearray: the folder store only hashes and writes it
    yield from rest


def _read_only(path: str) -> sqlite3.Connection:
    """A home this user may only read: ``mode=ro`` shares the WAL with a running writer; when SQLite
    cannot do that (no writable -shm file), ``immutable`` reads the file as it is."""
    last: sqlite3.Error | None = None
    for query in ("mode=ro", "immutable=1"):
        db = sqlite3.connect(f"{Path(path).absolute().as_uri()}?{query}", uri=True, check_same_thread=False,
                             isolation_level=None, timeout=_BUSY_TIMEOUT)
        try:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return db
        except sqlite3.OperationalError as exc:
            db.close()
            last = exc
    assert last is not None
    raise last
