"""The sandbox kit every emulator is built on: real HTTP, fault injection, streamed bodies."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable

import httpx
import pytest
from invoicesync import OutcomeUnknown
from invoicesync.http import HttpClient
from invoicesync.sandbox import Request, Response, RunningSandbox, SandboxApp


class Counter(SandboxApp):
    def __init__(self) -> None:
        super().__init__()
        self.created = 0
        self.route("POST", r"/items", self.create)
        self.route("PUT", r"/blob/(?P<name>[^/]+)", self.put_blob)

    def create(self, request: Request) -> Response:
        with self.lock:
            self.created += 1
        return Response.json({"id": self.created}, 201)

    def put_blob(self, request: Request) -> Response:
        size = sum(len(chunk) for chunk in request.iter_body())
        return Response.json({"name": request.params["name"], "size": size})


def test_faults_fire_as_configured(serve_sandbox: Callable[..., RunningSandbox]) -> None:
    app = Counter()
    running = serve_sandbox(app)
    app.add_fault("status:status=429,headers.Retry-After=0,times=2,path=/items")
    http = HttpClient(running.url, sleep=lambda s: None)
    assert http.post("/items", json={}).json() == {"id": 1}
    assert [s for _, _, s in app.requests] == [429, 429, 201]
    assert app.count("POST", "/items") == 3


def test_drop_after_makes_the_write_happen_but_the_answer_vanish(serve_sandbox: Callable[..., RunningSandbox]) -> None:
    app = Counter()
    running = serve_sandbox(app)
    httpx.post(f"{running.url}/__sandbox__/faults", json={"action": "drop_after", "path": "/items"})
    with pytest.raises(OutcomeUnknown):
        HttpClient(running.url, sleep=lambda s: None).post("/items", json={})
    assert app.created == 1  # the caller must look it up, not create it again


def test_chunked_request_bodies_stream_through(serve_sandbox: Callable[..., RunningSandbox]) -> None:
    running = serve_sandbox(Counter())
    chunks = (b"x" * 65536 for _ in range(40))
    response = httpx.put(f"{running.url}/blob/big", content=chunks)
    assert response.json() == {"name": "big", "size": 40 * 65536}


def test_unknown_routes_use_the_apps_error_shape(serve_sandbox: Callable[..., RunningSandbox]) -> None:
    running = serve_sandbox(Counter())
    response = httpx.get(f"{running.url}/nope")
    assert response.status_code == 404 and response.json()["error"]["code"] == "NotFound"


def test_tls_sandboxes_are_trusted_through_their_ca(serve_sandbox: Callable[..., RunningSandbox]) -> None:
    running = serve_sandbox(Counter(), tls=True)
    assert running.url.startswith("https://")
    trust = ssl.create_default_context(cafile=str(running.ca_file))
    assert httpx.post(f"{running.url}/items", verify=trust).status_code == 201


class Slow(SandboxApp):
    def __init__(self) -> None:
        super().__init__()
        self.route("GET", r"/wait", self.wait)
        self.release = threading.Event()

    def wait(self, request: Request) -> Response:
        self.release.wait(5)
        return Response.json({"ok": True})


def test_latency_delays_every_answer_but_not_the_admin_api(serve_sandbox: Callable[..., RunningSandbox]) -> None:
    app = Counter()
    app.latency = 0.2
    running = serve_sandbox(app)
    with httpx.Client(base_url=running.url) as http:
        started = time.perf_counter()
        assert http.post("/items", json={}).status_code == 201
        assert time.perf_counter() - started >= 0.2
        started = time.perf_counter()
        assert http.get("/__sandbox__/requests").status_code == 200
        assert time.perf_counter() - started < 0.2


def test_requests_beyond_the_in_flight_cap_of_a_credential_get_429(
        serve_sandbox: Callable[..., RunningSandbox]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    app = Slow()
    app.max_in_flight = 2
    running = serve_sandbox(app)

    def get(key: str) -> int:
        with httpx.Client(base_url=running.url, headers={"Authorization": key}) as http:
            return http.get("/wait").status_code

    with ThreadPoolExecutor(4) as pool:
        held = [pool.submit(get, "Bearer one") for _ in range(2)]
        deadline = time.monotonic() + 5
        while app._in_flight.get("Bearer one", 0) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)  # until both are in flight
        assert get("Bearer one") == 429  # a third from the same credential
        other = pool.submit(get, "Bearer two")  # another credential has its own cap
        app.release.set()
        assert [f.result() for f in held] == [200, 200]
        assert other.result() == 200
    assert get("Bearer one") == 200  # the cap is on requests in flight, not a count
