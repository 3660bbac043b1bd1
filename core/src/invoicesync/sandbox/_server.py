"""Serve a ``SandboxApp`` on loopback over real HTTP/1.1, optionally TLS with a throw-away CA."""

from __future__ import annotations

import http.server
import logging
import shutil
import socket
import ssl
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from ..errors import ConfigError
from ._app import DropConnection, Request, Response, SandboxApp

log = logging.getLogger("invoicesync.sandbox")


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle + delayed ACK adds ~40 ms
        # to every response and the sandbox, not the client, would set the pace of every test.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _handle(self) -> None:
        headers = httpx.Headers(list(self.headers.items()))
        request = Request(self.command, self.path, headers, self._body_stream(headers), self.server.base_url)
        try:
            response = self.server.app.handle(request)
            # Drain what the handler did not read, so the connection stays usable.
            for _ in request.iter_body():
                pass
        except DropConnection:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        except Exception as exc:
            log.exception("sandbox handler failed")
            response = Response.json({"error": {"code": "SandboxBug", "message": repr(exc)}}, 500)
        self._write(response)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

    def _body_stream(self, headers: httpx.Headers) -> Iterator[bytes]:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                line = self.rfile.readline().strip()
                size = int(line.split(b";")[0] or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():  # trailers
                        pass
                    return
                remaining = size
                while remaining:
                    chunk = self.rfile.read(min(remaining, 1024 * 1024))
                    if not chunk:
                        return
                    remaining -= len(chunk)
                    yield chunk
                self.rfile.readline()
        else:
            remaining = int(headers.get("content-length") or 0)
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 1024 * 1024))
                if not chunk:
                    return
                remaining -= len(chunk)
                yield chunk

    def _write(self, response: Response) -> None:
        self.send_response(response.status)
        headers = {k.lower(): (k, v) for k, v in response.headers.items()}
        for key, value in headers.values():
            self.send_header(key, value)
        body = response.body
        if isinstance(body, bytes | bytearray):
            if "content-length" not in headers:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for chunk in body:
            if chunk:
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    app: SandboxApp
    base_url: str


class RunningSandbox:
    """A sandbox serving in a background thread. Use as a context manager, or call ``stop``."""

    def __init__(self, app: SandboxApp, server: _Server, ca_file: Path | None,
                 made_dir: Path | None = None) -> None:
        self.app = app
        self.url = server.base_url
        self.ca_file = ca_file
        self._server = server
        self._made_dir = made_dir  # a temporary CA folder serve() made: removed on stop
        # A short poll interval: tests start and stop many sandboxes, and stop() waits one interval.
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"sandbox-{app.name}", daemon=True)
        self._thread.start()

    @property
    def verify(self) -> str | bool:
        """What an HTTP client should pass as ``verify`` to trust this sandbox."""
        return str(self.ca_file) if self.ca_file else True

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._made_dir is not None:
            shutil.rmtree(self._made_dir, ignore_errors=True)

    def __enter__(self) -> RunningSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(app: SandboxApp, host: str = "127.0.0.1", port: int = 0, *, tls: bool = False,
          tls_dir: Path | None = None) -> RunningSandbox:
    """Start ``app`` on ``host:port`` (0: a free port). With ``tls``, make a throw-away CA
    (``trustme``) and write its certificate to ``tls_dir/ca.pem`` for clients to trust."""
    server = _Server((host, port), _Handler)
    server.app = app
    ca_file = made_dir = None
    scheme = "http"
    if tls:
        try:
            import trustme
        except ImportError:  # a dependency of invoicesync; missing only from a broken environment
            server.server_close()
            raise ConfigError("serving a sandbox over TLS needs trustme: pip install trustme") from None

        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(context)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        directory = tls_dir or (made_dir := Path(tempfile.mkdtemp(prefix="invoicesync-ca-")))
        directory.mkdir(parents=True, exist_ok=True)
        ca_file = directory / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        scheme = "https"
    server.base_url = f"{scheme}://{host}:{server.server_address[1]}"
    return RunningSandbox(app, server, ca_file, made_dir)
