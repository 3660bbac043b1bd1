"""One runner per PostgreSQL state: a session advisory lock, keyed by the state's schema.

The server drops a session lock when its connection ends, so a runner that dies (even by SIGKILL,
or with its host) frees it once the server sees the connection go; nothing stale is left to clean
up. The holder's connection carries ``invoicesync runner PID@HOST`` as its application name, so a
second runner can say whom it is waiting for.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from ._lock import POLL_SECONDS, RunnerBusy, RunnerInfo

#: The lock's key: one per schema (advisory locks are per database already).
_KEY = "hashtextextended('invoicesync runner ' || current_schema(), 0)"
_LABEL = re.compile(r"invoicesync (?:runner|worker) (\d+)@(.*)")  # a worker holds it shared


class AdvisoryRunnerLock:
    def __init__(self, url: str) -> None:
        self.url = url

    @contextmanager
    def hold(self, me: RunnerInfo, *, wait: float | None = 0.0,
             should_stop: Callable[[], bool] = lambda: False) -> Iterator[None]:
        """Hold the lock for the ``with`` block, like ``FileRunnerLock.hold``."""
        label = f"invoicesync runner {me.pid}@{me.host}"[:63]  # the server keeps 63 bytes
        with psycopg.connect(self.url, autocommit=True, application_name=label, connect_timeout=10) as db:
            self._acquire(db, wait, should_stop)
            try:
                yield
            finally:
                if not db.closed:
                    db.execute(f"SELECT pg_advisory_unlock({_KEY})")

    def _acquire(self, db: psycopg.Connection[Any], wait: float | None, should_stop: Callable[[], bool]) -> None:
        deadline = None if wait is None else time.monotonic() + wait
        while True:
            row = db.execute(f"SELECT pg_try_advisory_lock({_KEY})").fetchone()
            if row and row[0]:
                return
            if should_stop() or (deadline is not None and time.monotonic() >= deadline):
                raise RunnerBusy(self.holder(db), waited=bool(wait), where="on this PostgreSQL state")
            time.sleep(POLL_SECONDS if deadline is None else max(0.0, min(POLL_SECONDS, deadline - time.monotonic())))

    @staticmethod
    def holder(db: psycopg.Connection[Any]) -> RunnerInfo | None:
        """Who holds the lock, as far as its connection says (its command is not known here)."""
        row = db.execute(
            f"""SELECT a.application_name, a.backend_start FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
                  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                  AND ((l.classid::bigint << 32) | l.objid::bigint) = {_KEY}"""
        ).fetchone()
        match = _LABEL.fullmatch(row[0]) if row else None
        if row is None or match is None:
            return None
        return RunnerInfo(pid=int(match[1]), host=match[2], command="invoicesync",
                          since=row[1].isoformat(timespec="seconds"))
