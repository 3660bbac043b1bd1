"""Named locks that hold across processes and machines sharing one state (``StateStore.named_lock``).

What they are for: an OAuth refresh with a single-use rotating refresh token (Billit) must be made
by one process at a time, or two workers spend the same token and one of them loses the login.

- **SQLite** (one machine): an exclusive ``flock`` on ``HOME/locks/<hash of the name>.lock``. The
  kernel drops it when the holder's descriptor closes, so a killed holder frees it at once.
- **PostgreSQL** (any number of machines): a session advisory lock on a hash of the state's schema
  and the name, taken on a connection of its own. The server frees it when that connection ends
  (a crash, ``SIGKILL``, a lost host) — nothing stale is left behind on either backend.

Both wait at most ``timeout`` seconds (``None``: as long as it takes) and then raise ``LockTimeout``.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import InvoiceSyncError

#: How often a waiter on a file lock tries again (flock has no timed wait).
_POLL_SECONDS = 0.02


class LockTimeout(InvoiceSyncError):
    """A named lock stayed taken by another process for longer than the caller would wait."""

    def __init__(self, name: str, timeout: float | None) -> None:
        self.name = name
        super().__init__(f"the lock {name!r} stayed taken by another process for {timeout:g} s; "
                         f"if no other invoicesync process is working on it, try again")


def lock_file_name(name: str) -> str:
    """A file name for any lock name (names carry account names, which may hold any character)."""
    return hashlib.sha256(name.encode()).hexdigest()[:32] + ".lock"


class FileNamedLocks:
    """Named locks as ``flock``s on files in one folder (the SQLite state's home)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @contextmanager
    def hold(self, name: str, *, timeout: float | None = 60.0) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        # O_CLOEXEC (Python's default): a child process must not keep the lock alive.
        fd = os.open(self.folder / lock_file_name(name), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if deadline is not None and time.monotonic() >= deadline:
                        raise LockTimeout(name, timeout) from None
                    time.sleep(_POLL_SECONDS)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


class AdvisoryNamedLocks:
    """Named locks as PostgreSQL session advisory locks, each on a connection of its own (a lock
    must outlive no request and must die with its holder; the store's pool shares connections)."""

    def __init__(self, url: str) -> None:
        self.url = url

    @contextmanager
    def hold(self, name: str, *, timeout: float | None = 60.0) -> Iterator[None]:
        import psycopg
        from psycopg import errors as pg_errors

        key = "hashtextextended('invoicesync lock ' || current_schema() || ' ' || %s, 0)"
        with psycopg.connect(self.url, autocommit=True, connect_timeout=10,
                             application_name=f"invoicesync lock {os.getpid()}") as db:
            # lock_timeout bounds the server-side wait of pg_advisory_lock; 0 means "no limit".
            millis = 0 if timeout is None else max(1, int(timeout * 1000))
            db.execute(f"SET lock_timeout = {millis}")
            try:
                db.execute(f"SELECT pg_advisory_lock({key})", (name,))
            except pg_errors.LockNotAvailable:
                raise LockTimeout(name, timeout) from None
            try:
                yield
            finally:
                if not db.closed:
                    db.execute(f"SELECT pg_advisory_unlock({key})", (name,))
