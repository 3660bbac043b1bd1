"""The sandbox kit every emulator is built on: real HTTP, fault injection, streamed bodies."""

from __future__ import annotations

import ssl
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
