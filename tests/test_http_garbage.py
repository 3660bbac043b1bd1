"""A request leaves no garbage in reference cycles: httpx's response holds its stream, which holds
the response; freed only by a full collection, which a long run gets seldom, that garbage grew the
sync's peak RSS with the number of requests."""

from __future__ import annotations

import gc
from collections.abc import Callable

import httpx
from invoicesync.http import HttpClient

REQUESTS = 30


def test_requests_and_streams_leave_no_reference_cycles(cyclic_garbage: Callable[[], int]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/missing":
            return httpx.Response(404, json={"error": "not found"})
        return httpx.Response(200, json={"ok": True, "path": request.url.path})

    client = HttpClient("https://svc.test", transport=httpx.MockTransport(handler), sleep=lambda _: None)
    gc.collect()
    gc.disable()
    try:
        for n in range(REQUESTS):
            assert client.get(f"/items/{n}").json()["ok"] is True
            with client.stream("GET", f"/files/{n}") as response:
                assert b"".join(response.iter_bytes())
            assert client.get("/missing", check=False).json() == {"error": "not found"}
        unreachable = cyclic_garbage()
    finally:
        gc.enable()
        client.close()
    assert unreachable < REQUESTS, f"{unreachable} objects in reference cycles after {3 * REQUESTS} requests"
