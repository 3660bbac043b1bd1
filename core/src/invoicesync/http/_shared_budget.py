"""A request budget shared by every process using one state: the same promise as ``Budget`` (at
most N requests in flight, at most R per period, a ``Retry-After`` seen by one pauses all), held
across worker processes and machines instead of within one.

The bookkeeping lives in the state (``StateStore.budget_ledger``): in-flight slots are locks that
die with their holder (PostgreSQL advisory locks on one connection per process; ``flock``s on one
machine with SQLite), so a killed worker's slots come back at once; the rate is a token bucket
in the ``budgets`` table, reserved in one statement; a pause is a time in the same row.

Costs: one round trip to take a slot (it also reads the pause), one to give it back, and one more
per request for an account with a rate limit. When this process's threads queue for the key's slots
(a fetch pool wider than the cap), a finished request hands its slot straight to a waiting thread —
the slot stays this process's, so the cap holds — and neither round trip is paid; threads beyond the
cap wait in the process instead of polling the ledger. ``Workspace`` uses this only when several processes
may share the state (``Config.shared_budgets``); a lone process keeps the in-process ``Budget``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

#: How long a request that found every slot taken waits before asking again, at first and at most
#: (a slot given back in this process wakes it at once; one given back elsewhere is seen by polling).
_FIRST_POLL, _MAX_POLL = 0.005, 0.1
#: A slot is handed from thread to thread only this long after the ledger was last read for the key,
#: so a pause another process set (a 429's Retry-After) is seen within this long, as when polling.
_HANDOFF_FRESH = 0.25


class BudgetLedger(Protocol):
    """The state's side of shared budgets, one per store (``StateStore.budget_ledger()``)."""

    def acquire(self, key: str, slots: int) -> tuple[int | None, float]:
        """Take a free in-flight slot of ``key`` out of ``slots``: ``(slot, 0)``; ``(None, seconds)``
        while ``key`` is paused (nothing taken); ``(None, 0)`` when every slot is taken."""
        ...

    def release(self, key: str, slot: int) -> None: ...

    def reserve(self, key: str, requests: int, period: float) -> float:
        """Reserve one request of the rate (a token bucket that may go into debt): how many seconds
        to wait before sending it, pauses included."""
        ...

    def pause(self, key: str, seconds: float) -> None:
        """Hold every request of ``key``, in every process, for ``seconds`` from now."""
        ...


class SharedBudget:
    """``Budget``'s interface over a ``BudgetLedger``: one per (service, credential) and process."""

    def __init__(
        self,
        ledger: BudgetLedger,
        key: str,
        requests: int | None = None,
        period: float = 60.0,
        *,
        concurrency: int = 8,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if requests is not None and requests <= 0:
            raise ValueError("requests must be positive")
        self.ledger = ledger
        self.key = key
        self.requests = requests
        self.period = period
        self.concurrency = concurrency
        self._sleep = sleep
        self._freed = threading.Condition()
        #: At most ``concurrency`` of this process's threads hold or seek a slot: more could never get one.
        self._gate = threading.BoundedSemaphore(concurrency)
        self._queued = 0  #: threads waiting at the gate
        self._handed: list[int] = []  #: slots passed on to threads at the gate, still held by this process
        self._fresh_until = 0.0  #: until when slots may be handed on (monotonic)
        self._paused_at = float("-inf")  #: when this process last set a pause (monotonic)
        self.used = 0
        #: Seconds spent waiting for a slot or the rate, in this process (for ``metrics`` and tuning).
        self.waited = 0.0

    def pause(self, seconds: float) -> None:
        with self._freed:  # no slot handed on: the next request reads the pause in the ledger
            self._fresh_until, self._paused_at = 0.0, time.monotonic()
        self.ledger.pause(self.key, seconds)

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Wait for the rate and a free in-flight slot, for the length of one request."""
        started = time.monotonic()
        if self.requests is not None and (wait := self.ledger.reserve(self.key, self.requests, self.period)) > 0:
            self._sleep(wait)
        with self._freed:
            self._queued += 1
        self._gate.acquire()
        try:
            with self._freed:
                self._queued -= 1
                slot = self._handed.pop() if self._handed else None
            if slot is None:
                slot = self._take()
            with self._freed:
                self.used += 1
                self.waited += time.monotonic() - started
            try:
                yield
            finally:
                with self._freed:
                    # Only to a thread no other handed slot is waiting for: none is left unclaimed.
                    hand_on = self._queued > len(self._handed) and time.monotonic() < self._fresh_until
                    if hand_on:
                        self._handed.append(slot)
                if not hand_on:
                    self.ledger.release(self.key, slot)
                    with self._freed:
                        self._freed.notify()
        finally:
            self._gate.release()

    def _take(self) -> int:
        """A free slot from the ledger, once the key's pause (if any) is over."""
        poll = _FIRST_POLL
        while True:
            read_at = time.monotonic()
            slot, paused = self.ledger.acquire(self.key, self.concurrency)
            if slot is not None:
                with self._freed:
                    if read_at > self._paused_at:  # a read from before our own pause is stale
                        self._fresh_until = max(self._fresh_until, read_at + _HANDOFF_FRESH)
                return slot
            if paused > 0:
                self._sleep(paused)
                continue
            with self._freed:  # every slot is taken (by other processes): wait for one of ours, or poll
                self._freed.wait(poll)
            poll = min(poll * 2, _MAX_POLL)
