"""The leases a task holds in the PostgreSQL state while it runs, on one connection of its own.

- The state's runner lock, *shared*: any number of tasks run at once, but a plain ``sync`` (which
  takes the same lock exclusively, and then treats this host's other claims as stale) never runs
  beside them.
- For an import, an exclusive lock on (account, company): a task redelivered while the first copy
  still runs (a worker's broker connection dropped), or two coordinators' tasks for one company,
  never list and fetch that company at once.

They are session advisory locks: the server frees them when the connection ends, so a task killed
with its worker (``SIGKILL``, a lost host) leaves nothing to clean up.
"""

from __future__ import annotations

import os
import socket
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

    @contextmanager
    def hold(self, *, company: str | None = None, wait: float,
             should_stop: Callable[[], bool] = lambda: False) -> Iterator[None]:
        """Hold the shared runner lock (and ``company``'s import lease, ``account/company``) for the
        ``with`` block; raise ``LeaseBusy`` if either stays taken for ``wait`` seconds."""
        with psycopg.connect(self.url, autocommit=True, application_name=self.label, connect_timeout=10) as db:
            deadline = time.monotonic() + wait
            if not _acquire(db, f"SELECT pg_try_advisory_lock_shared({RUNNER_KEY})", (), deadline, should_stop):
                raise LeaseBusy("a `sync` run without the workers holds this state's runner lock; "
                                "the workers wait for none of it, so this is retried next run")
            if company is not None and not _acquire(db, f"SELECT pg_try_advisory_lock({_COMPANY_KEY})",
                                                    (company,), deadline, should_stop):
                raise LeaseBusy(f"{company} is being imported by another task (in progress elsewhere); "
                                "retried next run")
            yield  # closing the connection frees both


def _acquire(db: psycopg.Connection[Any], sql: str, params: tuple[str, ...], deadline: float,
             should_stop: Callable[[], bool]) -> bool:
    while True:
        row = db.execute(sql, params).fetchone()
        if row and row[0]:
            return True
        if should_stop() or time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)
