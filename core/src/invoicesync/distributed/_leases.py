"""The leases a task holds in the PostgreSQL state while it runs, on one connection of its own.

- The state's runner lock, *shared*: any number of tasks run at once, but a plain ``sync`` (which
  takes the same lock exclusively, and then treats this host's other claims as stale) never runs
  beside them.
- For an import, an exclusive lock on (account, company): a task redelivered while the first copy
  still runs (a worker's broker connection dropped), or two coordinators' tasks for one company,
  never list and fetch that company at once.

They are session advisory locks: the server frees them when the connection ends, so a task killed
with its worker (``SIGKILL``, a lost host) leaves nothing to clean up. A finished task unlocks its
connection's locks and leaves the connection for the next task: a new connection per task cost a
server process start, ~5 ms of PostgreSQL's CPU per task.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from ..errors import InvoiceSyncError
from ..state._pglock import _KEY as RUNNER_KEY

_COMPANY_KEY = "hashtextextended('invoicesync import ' || current_schema() || ' ' || %s, 0)"
POLL_SECONDS = 0.2


class LeaseBusy(InvoiceSyncError):
    """The lease stayed taken for as long as the task would wait."""


class TaskLeases:
    def __init__(self, url: str) -> None:
        self.url = url
        self.label = f"invoicesync worker {os.getpid()}@{socket.gethostname()}"[:63]
        self._idle: list[psycopg.Connection[Any]] = []  #: connections holding no lock, for the next task
        self._lock = threading.Lock()

    @contextmanager
    def hold(self, *, company: str | None = None, wait: float,
             should_stop: Callable[[], bool] = lambda: False) -> Iterator[None]:
        """Hold the shared runner lock (and ``company``'s import lease, ``account/company``) for the
        ``with`` block; raise ``LeaseBusy`` if either stays taken for ``wait`` seconds."""
        db = self._connection()
        try:
            wanted: dict[str, tuple[str, tuple[str, ...]]] = {
                "runner": (f"pg_try_advisory_lock_shared({RUNNER_KEY})", ())}
            if company is not None:
                wanted["company"] = (f"pg_try_advisory_lock({_COMPANY_KEY})", (company,))
            missing = _acquire(db, wanted, time.monotonic() + wait, should_stop)
            if "runner" in missing:
                raise LeaseBusy("a `sync` run without the workers holds this state's runner lock; "
                                "the workers wait for none of it, so this is retried next run")
            if missing:
                raise LeaseBusy(f"{company} is being imported by another task (in progress elsewhere); "
                                "retried next run")
            yield
        finally:
            self._put_back(db)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for db in idle:
            db.close()

    def _connection(self) -> psycopg.Connection[Any]:
        with self._lock:
            while self._idle:
                db = self._idle.pop()
                if not db.closed:
                    return db
        return psycopg.connect(self.url, autocommit=True, application_name=self.label, connect_timeout=10)

    def _put_back(self, db: psycopg.Connection[Any]) -> None:
        """Free the task's locks and keep the connection; if they cannot be freed, close it (which
        frees them as surely)."""
        try:
            db.execute("SELECT pg_advisory_unlock_all()")
        except psycopg.Error:
            db.close()
            return
        with self._lock:
            self._idle.append(db)


def _acquire(db: psycopg.Connection[Any], wanted: dict[str, tuple[str, tuple[str, ...]]], deadline: float,
             should_stop: Callable[[], bool]) -> set[str]:
    """Try every lock of ``wanted`` (name -> its try-lock call) in one statement, then again only
    those still taken, until all are held or ``deadline``; the names of those never held. One round
    trip for a task whose locks are free (they are try-locks: taking one while another is busy
    waits for nothing, and ``pg_advisory_unlock_all`` frees whatever was held)."""
    missing = dict(wanted)
    while True:
        names = list(missing)
        params = tuple(param for name in names for param in missing[name][1])
        row = db.execute("SELECT " + ", ".join(missing[name][0] for name in names), params).fetchone()
        for name, held in zip(names, row or (), strict=False):
            if held:
                del missing[name]
        if not missing or should_stop() or time.monotonic() >= deadline:
            return set(missing)
        time.sleep(POLL_SECONDS)
