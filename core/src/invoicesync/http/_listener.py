"""The one-shot local HTTP server a terminal login listens on for the browser's redirect (RFC 8252).

Apart from ``_authorize`` so that what a sync imports (``RedirectUri`` in the plugins' settings)
does not import ``http.server``: only ``connect`` listens."""

from __future__ import annotations

import http.server
import socket
import threading
import urllib.parse
from typing import Any

from ..errors import AuthError


class Listener:
    """A one-shot HTTP server on the loopback redirect URI's host, port and path."""

    def __init__(self, redirect_uri: str) -> None:
        split = urllib.parse.urlsplit(redirect_uri)
        host = "::1" if split.hostname == "::1" else "127.0.0.1"  # localhost: the IPv4 literal RFC 8252 prefers
        self.path = split.path or "/"
        server_class = _CallbackServerV6 if ":" in host else _CallbackServer
        try:
            self.server = server_class((host, split.port or 0), _CallbackHandler)
        except OSError as exc:
            raise AuthError(f"cannot listen on {redirect_uri} for the login ({exc.strerror or exc}); close what "
                            "uses that port, or register and set another redirect_uri") from None
        self.server.done = threading.Event()
        self.server.result = ""
        self.server.path = self.path
        port = self.server.server_address[1]
        # Sent exactly as registered; only a port-less URI gets the port chosen here.
        self.redirect_uri = redirect_uri if split.port else split._replace(
            netloc=f"{split.hostname if ':' not in (split.hostname or '') else f'[{split.hostname}]'}:{port}"
        ).geturl()
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def __enter__(self) -> Listener:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait(self, ui: Any, url: str, *, no_browser: bool, timeout: float) -> str:
        """The address the browser came back to (or the one the user pasted)."""
        if not no_browser and ui.open_url(url):
            ui.echo("Waiting for the login to finish in the browser…")
            if not self.server.done.wait(timeout):
                raise AuthError("no login came back from the browser in time; try --no-browser")
            split = urllib.parse.urlsplit(self.redirect_uri)
            return urllib.parse.urlunsplit((split.scheme, split.netloc, split.path, self.server.result, ""))
        ui.echo(f"Open this URL in a browser and log in:\n\n  {url}\n")
        return str(ui.prompt("Paste the full URL the browser was sent to after the login")).strip()


class _CallbackHandler(http.server.BaseHTTPRequestHandler):
    server: _CallbackServer

    def do_GET(self) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        if parsed.path.rstrip("/") != self.server.path.rstrip("/"):
            self.send_error(404)
            return
        self.server.result = parsed.query
        body = b"<html><body><h1>invoicesync</h1><p>Login received. You can close this window.</p></body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.server.done.set()

    def log_message(self, format: str, *args: Any) -> None:  # the query holds the code: never log it
        pass


class _CallbackServer(http.server.HTTPServer):
    result: str  #: the query string the browser came back with
    done: threading.Event
    path: str


class _CallbackServerV6(_CallbackServer):
    address_family = socket.AF_INET6
