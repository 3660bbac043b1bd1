"""Our HTTP/1.1 connection (``http/_wire.py``) against raw socket servers that answer exactly the bytes
each test writes: body framings, broken answers, timeouts, and large bodies streamed both ways in
bounded memory. Errors must be the httpx classes the retry layer (``_client.py``) classifies."""

from __future__ import annotations

import socket
import threading
import tracemalloc
from collections.abc import Callable, Iterator

import httpx
import pytest
from invoicesync.http._connections import LeanPool, LeanTransport
from invoicesync.http._pool import ssl_context
from invoicesync.http._wire import WireConnection
from invoicesync.sandbox import Response, RunningSandbox, SandboxApp

Handler = Callable[["Peer"], None]


class Peer:
    """One accepted connection, read the way a server reads a request."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.buffer = b""

    def _fill(self) -> None:
        data = self.conn.recv(1 << 20)
        if not data:
            raise EOFError
        self.buffer += data

    def head(self) -> bytes:
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        return head

    def exactly(self, size: int) -> int:
        """Read and drop ``size`` bytes of body, in bounded memory."""
        got = 0
        while got < size:
            if not self.buffer:
                self._fill()
            taken = self.buffer[:size - got]
            self.buffer = self.buffer[len(taken):]
            got += len(taken)
        return got

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            self._fill()
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def chunked(self) -> int:
        """Read a chunked body, checking its framing; its size."""
        total = 0
        while size := int(self.line(), 16):
            total += self.exactly(size)
            assert self.line() == b""
        assert self.line() == b""  # no trailers
        return total

    def send(self, data: bytes) -> None:
        self.conn.sendall(data)


class Scripted:
    """Accepts connections and runs the next handler of ``handlers`` on each, in order."""

    def __init__(self, *handlers: Handler) -> None:
        self.handlers = list(handlers)
        self.accepts = 0
        self.errors: list[BaseException] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while self.handlers:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.accepts += 1
            handler = self.handlers.pop(0)
            with conn:
                try:
                    handler(Peer(conn))
                except (EOFError, ConnectionError):
                    pass
                except (AssertionError, OSError, ValueError) as exc:  # shown by the test, not lost in a thread
                    self.errors.append(exc)

    def close(self) -> None:
        self._listener.close()
        self._thread.join(10)
        assert not self.errors, self.errors


@pytest.fixture
def serve() -> Iterator[Callable[..., Scripted]]:
    servers: list[Scripted] = []

    def start(*handlers: Handler) -> Scripted:
        servers.append(Scripted(*handlers))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(transport=LeanTransport(ssl_context(True)), timeout=httpx.Timeout(10)) as plain:
        yield plain


def _pool(client: httpx.Client) -> LeanPool:
    return client._transport._pool  # type: ignore[attr-defined,no-any-return]


def test_chunked_answers_with_extensions_and_trailers_and_the_connection_is_reused(
        serve: Callable[..., Scripted], client: httpx.Client) -> None:
    def handler(peer: Peer) -> None:
        for _ in range(2):
            peer.head()
            peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n")
            peer.send(b"7\r\n, world\r\n0\r\nX-Trailer: yes\r\n\r\n")

    server = serve(handler)
    assert client.get(f"{server.url}/a").text == "hello, world"
    assert client.get(f"{server.url}/b").text == "hello, world"
    assert server.accepts == 1


def test_an_answer_delimited_by_close_is_read_to_the_close_and_its_connection_not_reused(
        serve: Callable[..., Scripted], client: httpx.Client) -> None:
    def handler(peer: Peer) -> None:
        peer.head()
        peer.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil ")
        peer.send(b"the end")

    server = serve(handler, handler)
    assert client.get(f"{server.url}/a").text == "until the end"
    assert _pool(client).open_connections == 0
    assert client.get(f"{server.url}/b").text == "until the end"
    assert server.accepts == 2


def test_no_body_after_head_204_304_and_interim_answers(serve: Callable[..., Scripted], client: httpx.Client) -> None:
    def handler(peer: Peer) -> None:
        peer.head()
        peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")  # HEAD: the length, no body
        peer.head()
        peer.send(b"HTTP/1.1 204 No Content\r\n\r\n")
        peer.head()
        peer.send(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n")
        peer.head()
        peer.send(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")

    server = serve(handler)
    head = client.head(f"{server.url}/h")
    assert (head.status_code, head.content, head.headers["content-length"]) == (200, b"", "1000")
    assert (client.get(f"{server.url}/n").status_code, client.get(f"{server.url}/m").status_code) == (204, 304)
    created = client.post(f"{server.url}/p")
    assert (created.status_code, created.text) == (201, "ok")
    assert server.accepts == 1


def test_a_body_cut_short_is_a_remote_protocol_error_and_the_connection_is_dropped(
        serve: Callable[..., Scripted], client: httpx.Client) -> None:
    def short(peer: Peer) -> None:
        peer.head()
        peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")

    def chunked_short(peer: Peer) -> None:
        peer.head()
        peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nonly")

    server = serve(short, chunked_short)
    with pytest.raises(httpx.RemoteProtocolError, match="received 9 bytes, expected 100"):
        client.get(f"{server.url}/a")
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(f"{server.url}/b")
    assert _pool(client).open_connections == 0


@pytest.mark.parametrize("answer", [b"HTTP/1.1 OK\r\n\r\n", b"HTTP/2 200 OK\r\n\r\n", b"garbage\r\n\r\n",
                                    b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
                                    b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n",
                                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"])
def test_a_malformed_answer_is_a_remote_protocol_error(answer: bytes, serve: Callable[..., Scripted],
                                                        client: httpx.Client) -> None:
    def handler(peer: Peer) -> None:
        peer.head()
        peer.send(answer)

    server = serve(handler)
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(f"{server.url}/a")


def test_a_server_that_closes_without_answering_is_a_remote_protocol_error(
        serve: Callable[..., Scripted], client: httpx.Client) -> None:
    server = serve(lambda peer: peer.head() and None)
    with pytest.raises(httpx.RemoteProtocolError, match="Server disconnected without sending a response"):
        client.post(f"{server.url}/a", content=b"{}")


def test_a_read_timeout_and_a_refused_connection_raise_what_the_retry_layer_classifies(
        serve: Callable[..., Scripted]) -> None:
    answered = threading.Event()

    def silent(peer: Peer) -> None:
        peer.head()
        answered.wait(10)

    server = serve(silent)
    with httpx.Client(transport=LeanTransport(ssl_context(True)), timeout=httpx.Timeout(10, read=0.2)) as client:
        with pytest.raises(httpx.ReadTimeout):
            client.get(f"{server.url}/slow")
        answered.set()
        assert _pool(client).open_connections == 0
        closed = socket.create_server(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        closed.close()
        with pytest.raises(httpx.ConnectError):
            client.get(f"http://127.0.0.1:{port}/")


def test_a_url_without_an_http_scheme_is_refused(client: httpx.Client) -> None:
    with pytest.raises(httpx.UnsupportedProtocol, match="unsupported protocol 'ftp://'"):
        client.get("ftp://127.0.0.1:21/file")


def test_header_injection_is_refused_before_anything_is_sent(serve: Callable[..., Scripted],
                                                             client: httpx.Client) -> None:
    server = serve()
    with pytest.raises(httpx.LocalProtocolError):
        client.get(f"{server.url}/a", headers={"X-Bad": "a\r\nInjected: yes"})
    with pytest.raises(httpx.LocalProtocolError):
        client.get(f"{server.url}/a", headers={"Bad Name": "a"})
    assert server.accepts == 0 or not server.errors


def test_a_large_upload_and_download_stream_in_bounded_memory(serve: Callable[..., Scripted],
                                                              client: httpx.Client) -> None:
    size = 256 << 20
    chunk = b"u" * (64 << 10)
    received: list[int] = []

    def handler(peer: Peer) -> None:
        head = peer.head()
        assert b"transfer-encoding: chunked" in head.lower()
        received.append(peer.chunked())
        peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        peer.head()
        peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (64 << 20))
        block = b"d" * (1 << 20)
        for _ in range(64):
            peer.send(block)

    server = serve(handler)
    tracemalloc.start()
    try:
        upload = client.post(f"{server.url}/up", content=(chunk for _ in range(size // len(chunk))))
        assert upload.text == "ok" and received == [size]
        with client.stream("GET", f"{server.url}/down") as download:
            assert sum(len(part) for part in download.iter_raw()) == 64 << 20
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20  # a few chunks at a time, never the body
    assert server.accepts == 1


class _Hello(SandboxApp):
    def __init__(self) -> None:
        super().__init__()
        self.route("GET", r"/hello", lambda request: Response.json({"hello": request.path}))


def test_tls_checks_the_certificate_and_the_host_name(serve_sandbox: Callable[..., RunningSandbox]) -> None:
    running = serve_sandbox(_Hello(), tls=True)
    assert isinstance(running.verify, str)
    with httpx.Client(transport=LeanTransport(ssl_context(running.verify)), timeout=10) as trusted:
        # The server asked (SNI and check) for a name its certificate was not made for.
        with pytest.raises(httpx.ConnectError, match="Hostname mismatch"):
            trusted.get(f"{running.url}/hello", extensions={"sni_hostname": "elsewhere.test"})
        assert trusted.get(f"{running.url}/hello").json() == {"hello": "/hello"}
    with httpx.Client(transport=LeanTransport(ssl_context(True)), timeout=10) as system_cas, \
            pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        system_cas.get(f"{running.url}/hello")


def test_a_request_cut_short_by_a_failed_write_says_so_and_its_connection_is_not_reused() -> None:
    ours, theirs = socket.socketpair()
    theirs.close()  # the server went away: the write fails (EPIPE), as when it answers early and closes
    connection = WireConnection("127.0.0.1", 80, None)
    connection._sock = ours
    try:
        assert connection.send_request(b"POST", b"/", [(b"Content-Length", b"3")], [b"abc"], 1.0) is False
        ours2, theirs2 = socket.socketpair()
        with theirs2:
            connection._sock = ours2
            assert connection.send_request(b"POST", b"/", [(b"Content-Length", b"3")], [b"abc"], 1.0) is True
            assert theirs2.recv(1024) == b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"  # one send
    finally:
        ours.close()
        connection.close()
