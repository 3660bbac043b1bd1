"""A per-account request budget: a token bucket plus a cap on requests in flight.

One ``Budget`` is shared by every thread and every client of an account, so a ``Retry-After``
seen by one worker pauses all of them instead of each finding the limit on its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol


class RequestBudget(Protocol):
    """What ``HttpClient`` asks of a budget: this in-process ``Budget``, or a ``SharedBudget`` that
    holds across every process using one state."""

    requests: int | None

    def slot(self) -> AbstractContextManager[None]: ...

    def pause(self, seconds: float) -> None: ...


class Budget:
    def __init__(
        self,
        requests: int | None = None,
        period: float = 60.0,
        *,
        concurrency: int = 8,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if requests is not None and requests <= 0:
            raise ValueError("requests must be positive")
        self.requests = requests
        self.period = period
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(requests or 0)
        self._updated = clock()
        self._paused_until = 0.0
        self._lock = threading.Lock()
        self._in_flight = threading.BoundedSemaphore(concurrency)
        self.used = 0

    def pause(self, seconds: float) -> None:
        """Hold every request of this account for ``seconds`` (a shared ``Retry-After``)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)

    def _take(self) -> float:
        """Take a token if one is free; otherwise return how long to wait."""
        with self._lock:
            now = self._clock()
            if now < self._paused_until:
                return self._paused_until - now
            if self.requests is None:
                self.used += 1
                return 0.0
            rate = self.requests / self.period
            self._tokens = min(float(self.requests), self._tokens + (now - self._updated) * rate)
            self._updated = now
            if self._tokens >= 1:
                self._tokens -= 1
                self.used += 1
                return 0.0
            return (1 - self._tokens) / rate

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Wait for a token and a free in-flight slot, for the length of one request."""
        while (wait := self._take()) > 0:
            self._sleep(wait)
        with self._in_flight:
            yield
