"""Requests sent and retries made, per service, for ``/metrics``: two counters bumped per attempt.

Kept in the process (the dashboard's runs, a CLI's run): a lock and a dict increment, nothing that
grows with the traffic (one key per service name)."""

from __future__ import annotations

import threading
from collections import Counter


class RequestCounters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: Counter[str] = Counter()
        self._retries: Counter[str] = Counter()

    def sent(self, service: str) -> None:
        with self._lock:
            self._requests[service] += 1

    def retried(self, service: str) -> None:
        with self._lock:
            self._retries[service] += 1

    def snapshot(self) -> tuple[dict[str, int], dict[str, int]]:
        """(requests, retries) by service, as counted so far."""
        with self._lock:
            return dict(self._requests), dict(self._retries)


#: The process's counters (every ``HttpClient`` counts here).
HTTP_COUNTERS = RequestCounters()
