"""Faults from core's injection machinery: 429 with Retry-After, 500s, slow answers and
dropped connections are retried by core's HTTP client; the import completes unchanged."""

from __future__ import annotations

from typing import Any

import pytest
from invoicesync import RateLimited


def test_rate_limit_with_retry_after_is_honoured(billit: Any) -> None:
    h = billit(documents=130, companies=1)
    h.connect()
    expected = h.list().ids
    h.app.requests.clear()
    h.app.add_fault({"status": 429, "path": r"^/v1/orders$", "after": 1, "times": 1,
                     "headers": {"Retry-After": "1"}})
    assert h.list().ids == expected
    statuses = [s for m, p, s in h.app.requests if p == "/v1/orders"]
    assert statuses.count(429) == 1 and statuses[-1] == 200
    body = h.app.error(429, "TooManyRequests", "x").body
    assert b'"errors"' in body  # injected answers carry Billit's error body too


def test_server_errors_and_dropped_connections_are_retried(billit: Any) -> None:
    h = billit(documents=20, companies=1)
    h.connect()
    ids = h.list().ids
    h.app.add_fault({"status": 500, "path": r"^/v1/files/", "times": 2})
    h.app.add_fault({"action": "drop", "path": r"^/v1/orders/\d+$", "times": 2})
    h.app.add_fault({"action": "delay", "seconds": 0.3, "path": r"^/v1/orders/\d+$", "after": 2, "times": 1})
    document = h.fetch(ids[0])
    assert document.files and document.files[0].size > 0
    assert sum(1 for _, p, s in h.app.requests if p.startswith("/v1/files/") and s == 500) == 2


def test_persistent_rate_limit_ends_in_a_clear_error(billit: Any) -> None:
    h = billit(documents=5, companies=1)
    h.connect()
    h.app.add_fault({"status": 429, "path": r"^/v1/orders$", "times": None, "headers": {"Retry-After": "0"}})
    with pytest.raises(RateLimited, match="rate limited"):
        h.list()
