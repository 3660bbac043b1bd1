"""The state's side of shared request budgets (``http.SharedBudget``): in-flight slots, a token
bucket and ``Retry-After`` pauses per (service, credential) key, for every process using the state.

- **In-flight slots** are locks that die with the process holding them, so a killed worker's slots
  come back at once and nothing needs expiring: with PostgreSQL, session advisory locks on
  ``(hash of schema and key, slot)``, all taken on one connection per process; with SQLite (one
  machine), ``flock``s on ``HOME/budgets/<hash of key>.<slot>.lock``. A session may take its own
  advisory lock twice, and one descriptor its own ``flock``, so each process also remembers which
  slots its threads hold and never offers them again.
- **Rate and pauses** live in the ``budgets`` table (migration 12): ``tokens`` may go negative — a
  request reserves its token in one statement and waits until the bucket has paid the debt back —
  and ``paused_until`` holds every request of the key. PostgreSQL times both by the server's clock.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._sql import SqlStore

_RESERVE_SQLITE = """
INSERT INTO budgets (key, tokens, updated_at, paused_until) VALUES (?, ? - 1, ?, 0)
ON CONFLICT (key) DO UPDATE SET
    tokens = MIN(excluded.tokens + 1, tokens + MAX(0, excluded.updated_at - updated_at) * ?) - 1,
    updated_at = MAX(updated_at, excluded.updated_at)
RETURNING tokens, paused_until - ? AS pause
"""
_PAUSE_SQLITE = """
INSERT INTO budgets (key, tokens, updated_at, paused_until) VALUES (?, 0, ?, ?)
ON CONFLICT (key) DO UPDATE SET paused_until = MAX(paused_until, excluded.paused_until)
"""

_NOW = "extract(epoch FROM statement_timestamp())::double precision"
_RESERVE_PG = f"""
INSERT INTO budgets AS b (key, tokens, updated_at, paused_until) VALUES (?, ? - 1, {_NOW}, 0)
ON CONFLICT (key) DO UPDATE SET
    tokens = LEAST(excluded.tokens + 1, b.tokens + GREATEST(0, excluded.updated_at - b.updated_at) * ?) - 1,
    updated_at = GREATEST(b.updated_at, excluded.updated_at)
RETURNING tokens, paused_until - {_NOW} AS pause
"""
_PAUSE_PG = f"""
INSERT INTO budgets AS b (key, tokens, updated_at, paused_until) VALUES (?, 0, {_NOW}, {_NOW} + ?)
ON CONFLICT (key) DO UPDATE SET paused_until = GREATEST(b.paused_until, excluded.paused_until)
"""
_SLOT_KEY = "hashtext('invoicesync budget ' || current_schema() || ' ' || %(key)s)"
#: The pause and, only when there is none, the first free slot: one round trip. The LIMIT stops the
#: scan at the first lock taken, so no other slot is locked by the search. The slots this process's
#: threads hold are left out of the candidates in Python, not by a second test in the WHERE: the
#: planner orders a WHERE's tests by cost, and once psycopg prepares the query the generic plan
#: priced ``<> ALL($n)`` above the lock, so the session locked its own held slots a second time and
#: kept them after their threads gave them back (a busy worker came to hold every slot).
_ACQUIRE_PG = f"""
WITH p AS (SELECT COALESCE((SELECT paused_until FROM budgets WHERE key = %(key)s), 0) - {_NOW} AS wait)
SELECT p.wait, CASE WHEN p.wait <= 0 THEN (
    SELECT s FROM unnest(%(candidates)s::int[]) AS s
    WHERE pg_try_advisory_lock({_SLOT_KEY}, s) LIMIT 1) END AS slot
FROM p
"""


def _pg(sql: str) -> str:
    return sql.replace("?", "%s")


def _debt_wait(row: Any, rate: float) -> float:
    tokens, pause = float(row["tokens"]), float(row["pause"] or 0)
    return max(0.0, pause, -tokens / rate if tokens < 0 else 0.0)


class FileBudgetLedger:
    """Shared budgets of a SQLite state: slots as ``flock``s in ``folder``, the rest in ``budgets``."""

    def __init__(self, store: SqlStore, folder: Path) -> None:
        self._store = store
        self.folder = folder
        self._lock = threading.Lock()
        self._fds: dict[tuple[str, int], int] = {}
        self._held: set[tuple[str, int]] = set()

    def acquire(self, key: str, slots: int) -> tuple[int | None, float]:
        row = self._store._one("SELECT paused_until FROM budgets WHERE key = ?", (key,))
        if row is not None and (wait := float(row["paused_until"]) - time.time()) > 0:
            return None, wait
        with self._lock:
            for slot in range(slots):
                if (key, slot) in self._held:
                    continue
                try:
                    fcntl.flock(self._fd(key, slot), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue
                self._held.add((key, slot))
                return slot, 0.0
        return None, 0.0

    def release(self, key: str, slot: int) -> None:
        with self._lock:
            self._held.discard((key, slot))
            fcntl.flock(self._fd(key, slot), fcntl.LOCK_UN)

    def reserve(self, key: str, requests: int, period: float) -> float:
        now, rate = time.time(), requests / period
        return _debt_wait(self._store._one(_RESERVE_SQLITE, (key, requests, now, rate, now)), rate)

    def pause(self, key: str, seconds: float) -> None:
        now = time.time()
        self._store._exec(_PAUSE_SQLITE, (key, now, now + seconds))

    def _fd(self, key: str, slot: int) -> int:
        fd = self._fds.get((key, slot))
        if fd is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            name = f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.{slot}.lock"
            fd = self._fds[(key, slot)] = os.open(self.folder / name, os.O_RDWR | os.O_CREAT, 0o600)
        return fd

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)  # drops this process's flocks
            self._fds.clear()
            self._held.clear()


class AdvisoryBudgetLedger:
    """Shared budgets of a PostgreSQL state, all on one connection of this process (opened on first
    use): slots as advisory locks held by it, the rest in ``budgets``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.Lock()
        self._db: Any = None
        self._held: dict[str, set[int]] = {}

    def _connection(self) -> Any:
        import psycopg
        from psycopg.rows import dict_row

        if self._db is None or self._db.closed:
            # A new connection holds none of the old one's locks (they died with it).
            self._held.clear()
            self._db = psycopg.connect(self.url, autocommit=True, connect_timeout=10, row_factory=dict_row,
                                       application_name=f"invoicesync budgets {os.getpid()}")
            # A budget row lost to a server crash costs nothing (a pause or a rate lives for
            # seconds): no WAL flush per request, which cost ~8 ms of each rate-limited one.
            self._db.execute("SET synchronous_commit = off")
        return self._db

    def acquire(self, key: str, slots: int) -> tuple[int | None, float]:
        import psycopg

        with self._lock:
            try:
                row = self._try(key, slots)
            except psycopg.OperationalError:  # the connection broke (a server restart): once more, anew
                self._db.close()
                row = self._try(key, slots)
            held = self._held.setdefault(key, set())
            if row["slot"] is not None:
                held.add(int(row["slot"]))
                return int(row["slot"]), 0.0
            return None, max(0.0, float(row["wait"]))

    def _try(self, key: str, slots: int) -> Any:
        db = self._connection()
        held = self._held.get(key, ())
        candidates = [slot for slot in range(slots) if slot not in held]
        return db.execute(_ACQUIRE_PG, {"key": key, "candidates": candidates}).fetchone()

    def release(self, key: str, slot: int) -> None:
        import psycopg

        with self._lock:
            held = self._held.get(key, set())
            if slot not in held or self._db is None or self._db.closed:
                return  # the connection was lost since: the server freed the slot with it
            held.discard(slot)
            try:
                self._db.execute(f"SELECT pg_advisory_unlock({_SLOT_KEY}, %(slot)s)", {"key": key, "slot": slot})
            except psycopg.OperationalError:
                self._db.close()  # the server frees every slot of a broken connection itself

    def reserve(self, key: str, requests: int, period: float) -> float:
        rate = requests / period
        with self._lock:
            row = self._connection().execute(_pg(_RESERVE_PG), (key, requests, rate)).fetchone()
        return _debt_wait(row, rate)

    def pause(self, key: str, seconds: float) -> None:
        with self._lock:
            self._connection().execute(_pg(_PAUSE_PG), (key, seconds))

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()  # the server frees every slot this process held
            self._held.clear()
