"""The connection pool under ``HttpClient`` (``http/_connections.py``): connections reused, checked
one at a time, bounded, given back only clean, and all closed on ``close()``; counted on a plain
socket server that sees every TCP connection."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpcore
import httpx
import pytest
from invoicesync.http import HttpClient
from invoicesync.http._connections import LeanPool, LeanTransport
from invoicesync.http._pool import new_pool, ssl_context
from invoicesync.http._wire import WireConnection
from invoicesync.sandbox import Request, Response, RunningSandbox, SandboxApp


class Server:
    """HTTP/1.1 with keep-alive on a bare socket: counts connections and requests, and can close
    its idle connections the way a server's keep-alive timeout does (no ``Connection: close``)."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.lock = threading.Lock()
        self.accepts = 0
        self.requests: list[tuple[str, str]] = []
        self.live: set[socket.socket] = set()  # connections the server has not seen closed
        self.idle: set[socket.socket] = set()  # ... waiting for their next request
        self.active = self.max_active = 0
        self.hold = threading.Event()
        self.hold.set()  # cleared: ``/slow`` waits until it is set again
        self._threads: list[threading.Thread] = []
        self._start(self._accept)

    def _start(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self.lock:
                self.accepts += 1
                self.live.add(conn)
            self._start(self._serve, conn)

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        try:
            while True:
                with self.lock:
                    self.idle.add(conn)
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                with self.lock:
                    self.idle.discard(conn)
                    self.active += 1
                    self.max_active = max(self.max_active, self.active)
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                lines = head.decode().split("\r\n")
                method, path, _ = lines[0].split(" ")
                length = next((int(v) for k, v in (line.split(":", 1) for line in lines[1:])
                               if k.lower() == "content-length"), 0)
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                buffer = buffer[length:]
                with self.lock:
                    self.requests.append((method, path))
                if path == "/slow":
                    self.hold.wait(30)
                body = b"x" * 1_000_000 if path == "/big" else f"{method} {path}".encode()
                close = path == "/last"
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n" % (
                    len(body), b"Connection: close\r\n" if close else b"") + body)
                with self.lock:
                    self.active -= 1
                if close:
                    return
        except OSError:
            return
        finally:
            with self.lock:
                self.live.discard(conn)
                self.idle.discard(conn)
            conn.close()

    def drop_idle(self) -> int:
        """Close every connection waiting for a request, as a keep-alive timeout does."""
        with self.lock:
            idle = list(self.idle)
        for conn in idle:
            conn.shutdown(socket.SHUT_RDWR)
        wait_for(lambda: not (self.live & set(idle)))
        return len(idle)

    def close(self) -> None:
        self.hold.set()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the thread in accept()
        except OSError:
            pass
        self._listener.close()
        with self.lock:
            live = list(self.live)
        for conn in live:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in self._threads:
            thread.join(5)


def wait_for(condition: Callable[[], object], what: str = "condition") -> None:
    """Wait (up to 10 s) for something another thread does; not a timing assertion."""
    deadline = time.monotonic() + 10
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    yield running
    running.close()


def _lean_pool(pool: httpx.Client) -> LeanPool:
    transport = pool._transport
    assert isinstance(transport, LeanTransport)
    lean = transport._pool
    assert isinstance(lean, LeanPool)
    return lean


def _client(limits: httpx.Limits, timeout: httpx.Timeout | None = None) -> httpx.Client:
    return httpx.Client(transport=LeanTransport(ssl_context(True), limits), timeout=timeout or httpx.Timeout(10))


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per expiry check (``has_expired``: a readability poll) of any pooled connection."""
    counted: list[int] = []
    has_expired = WireConnection.has_expired

    def counting(self: WireConnection, keepalive_expiry: float | None) -> bool:
        counted.append(1)
        return has_expired(self, keepalive_expiry)

    monkeypatch.setattr(WireConnection, "has_expired", counting)
    return counted


def test_sequential_requests_share_one_connection_and_check_only_the_one_they_reuse(
        server: Server, checks: list[int]) -> None:
    with HttpClient(server.url) as http:
        for n in range(20):
            assert http.get(f"/n/{n}").text == f"GET /n/{n}"
            assert http.post("/items", content=b"{}").text == "POST /items"
        # httpcore's pool checked every pooled connection when each request came and each answer
        # was closed (79 here, with one connection); one check per reuse is 39.
        assert len(checks) == 39
        assert _lean_pool(http._client).open_connections == 1
    assert server.accepts == 1 and len(server.requests) == 40


def test_a_connection_the_server_closed_while_idle_is_replaced_without_a_failed_request(server: Server) -> None:
    with HttpClient(server.url, max_attempts=1) as http:
        assert http.get("/a").text == "GET /a"
        wait_for(lambda: server.idle, "the server to wait for the next request")  # it answered before it got there
        assert server.drop_idle() == 1
        assert http.post("/items", content=b"{}").text == "POST /items"  # sent once, on a new connection
        assert http.get("/b").text == "GET /b"
    assert server.accepts == 2
    assert server.requests == [("GET", "/a"), ("POST", "/items"), ("GET", "/b")]


def test_an_answer_not_read_to_its_end_does_not_put_its_connection_back(server: Server) -> None:
    with HttpClient(server.url) as http:
        with http.stream("GET", "/big") as response:
            first = next(response.iter_raw(65536))
            assert first and len(first) <= 65536
        lean = _lean_pool(http._client)
        assert (lean.open_connections, lean.idle_connections) == (0, 0)
        assert http.get("/after").text == "GET /after"  # no leftover bytes of /big read as its answer
        with http.stream("GET", "/big") as response:
            assert sum(len(c) for c in response.iter_bytes()) == 1_000_000
        assert (lean.open_connections, lean.idle_connections) == (1, 1)  # read to the end: kept
        assert http.get("/last").text == "GET /last"  # Connection: close: not kept
        assert (lean.open_connections, lean.idle_connections) == (0, 0)
    assert server.accepts == 2  # /big cut short, then /after, /big and /last on one


def test_open_connections_are_bounded_and_a_waiting_request_gets_a_freed_one(server: Server) -> None:
    server.hold.clear()
    client = _client(httpx.Limits(max_connections=2, max_keepalive_connections=2))
    lean = client._transport._pool  # type: ignore[attr-defined]
    try:
        with ThreadPoolExecutor(6) as threads:
            answers = [threads.submit(client.get, f"{server.url}/slow") for _ in range(6)]
            wait_for(lambda: server.active == 2 and lean._waiting == 4, "two requests served, four waiting")
            server.hold.set()
            assert [a.result().text for a in answers] == ["GET /slow"] * 6
        assert server.max_active == 2 and server.accepts == 2 and lean.open_connections == 2
    finally:
        client.close()


def test_concurrent_requests_check_at_most_one_connection_each(server: Server, checks: list[int]) -> None:
    with HttpClient(server.url) as http, ThreadPoolExecutor(8) as threads:
        texts = list(threads.map(lambda n: http.get(f"/c/{n}").text, range(400)))
    assert texts == [f"GET /c/{n}" for n in range(400)]
    assert server.accepts <= 8 and len(checks) <= 400 - server.accepts


def test_a_pool_timeout_when_every_connection_is_busy(server: Server) -> None:
    client = _client(httpx.Limits(max_connections=1), httpx.Timeout(10, pool=0.05))
    try:
        with client.stream("GET", f"{server.url}/held"), pytest.raises(httpx.PoolTimeout):
            client.get(f"{server.url}/more")
        assert client.get(f"{server.url}/more").text == "GET /more"
    finally:
        client.close()


def test_at_the_limit_an_idle_connection_to_another_origin_makes_room(server: Server) -> None:
    other = Server()
    client = _client(httpx.Limits(max_connections=1))
    try:
        assert client.get(f"{server.url}/a").text == "GET /a"
        assert client.get(f"{other.url}/b").text == "GET /b"
        wait_for(lambda: not server.live, "the first origin's connection closed")
        assert client._transport._pool.open_connections == 1  # type: ignore[attr-defined]
    finally:
        client.close()
        other.close()


def test_close_closes_every_connection_idle_or_busy(server: Server) -> None:
    http = HttpClient(server.url)
    with ThreadPoolExecutor(4) as threads:
        list(threads.map(lambda n: http.get(f"/x/{n}"), range(40)))
    stream = http._client.stream("GET", "/big")
    response = stream.__enter__()
    lean = _lean_pool(http._client)
    assert lean.open_connections >= 1 and server.live
    http.close()
    assert lean.open_connections == 0
    wait_for(lambda: not server.live, "the server to see every connection closed")
    with pytest.raises(httpx.HTTPError):
        response.read()
    stream.__exit__(None, None, None)
    assert (lean.open_connections, lean.idle_connections) == (0, 0)  # not given back after close


def test_proxies_from_the_environment_are_httpxs_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "")
    pool, plain = new_pool("https://svc.test"), httpx.Client(base_url="https://svc.test")
    try:
        proxied = pool._transport_for_url(httpx.URL("https://svc.test/x"))
        assert type(proxied) is httpx.HTTPTransport and type(proxied._pool) is httpcore.HTTPProxy
        assert [(p.pattern, type(t)) for p, t in pool._mounts.items()] == \
            [(p.pattern, type(t)) for p, t in plain._mounts.items()]
        assert isinstance(pool._transport_for_url(httpx.URL("http://svc.test/x")), LeanTransport)
    finally:
        pool.close()
        plain.close()


class _Hello(SandboxApp):
    def __init__(self) -> None:
        super().__init__()
        self.route("GET", r"/hello", lambda request: Response.json({"hello": request.path}))
        self.route("POST", r"/echo", self.echo)

    def echo(self, request: Request) -> Response:
        return Response.json({"size": sum(len(chunk) for chunk in request.iter_body())})


def test_tls_with_the_sandbox_ca_reuses_its_connection(serve_sandbox: Callable[..., RunningSandbox]) -> None:
    running = serve_sandbox(_Hello(), tls=True)
    with HttpClient(running.url, verify=running.verify) as http:
        for _ in range(5):
            assert http.get("/hello").json() == {"hello": "/hello"}
        chunks = (b"y" * 65536 for _ in range(32))  # a streamed upload
        assert http.post("/echo", content=lambda: chunks).json() == {"size": 32 * 65536}
        assert _lean_pool(http._client).open_connections == 1
