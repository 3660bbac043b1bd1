"""A tiny routing layer for service emulators ("sandboxes"), with fault injection built in.

Every plugin's sandbox is a ``SandboxApp`` with routes; ``serve`` puts it on loopback over real
HTTP (or HTTPS), so tests drive the real client code, and ``invoicesync sandbox NAME`` runs it.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import httpx

Handler = Callable[["Request"], "Response"]


class LoggedRequest(tuple[str, str, int]):
    """One answered request as tests read it, ``(method, path, status)``, and when it arrived and
    was answered (``time.time()``), for benchmarks' timelines of requests in flight."""

    started: float
    ended: float

    def __new__(cls, method: str, path: str, status: int, started: float) -> LoggedRequest:
        entry = super().__new__(cls, (method, path, status))
        entry.started, entry.ended = started, time.time()
        return entry


class Request:
    """One incoming request. ``headers`` are case-insensitive; the body is read on demand."""

    def __init__(
        self,
        method: str,
        target: str,
        headers: httpx.Headers,
        body_stream: Iterator[bytes],
        base_url: str,
    ) -> None:
        self.received = time.time()
        self.method = method.upper()
        split = urllib.parse.urlsplit(target)
        self.path = urllib.parse.unquote(split.path)
        self.raw_path = split.path
        self.query_string = split.query
        self.query = urllib.parse.parse_qs(split.query, keep_blank_values=True)
        self.headers = headers
        self.base_url = base_url
        self.params: dict[str, str] = {}
        self._stream = body_stream
        self._body: bytes | None = None

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def iter_body(self) -> Iterator[bytes]:
        """Stream the body (each chunk once); use this for large uploads."""
        if self._body is not None:
            yield self._body
            return
        yield from self._stream
        self._body = b""

    @property
    def body(self) -> bytes:
        if self._body is None:
            self._body = b"".join(self._stream)
        return self._body

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Response:
    status: int = 200
    body: bytes | Iterable[bytes] = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return cls(status, json.dumps(data).encode(), {"Content-Type": "application/json", **(headers or {})})

    @classmethod
    def text(cls, text: str, status: int = 200, content_type: str = "text/plain; charset=utf-8") -> Response:
        return cls(status, text.encode(), {"Content-Type": content_type})

    @classmethod
    def redirect(cls, location: str, status: int = 302) -> Response:
        return cls(status, b"", {"Location": location})


class DropConnection(Exception):
    """Raised by a handler (or a fault) to close the connection without an answer."""


@dataclass
class Fault:
    """One fault rule. It matches by method and path regex, skips ``after`` matches, then fires
    ``times`` times (``None``: forever).

    ``action``: ``status`` (answer ``status`` with ``body``/``headers``, or the app's own error
    body for ``code``), ``delay`` (sleep ``seconds`` then serve normally), ``drop`` (close the
    connection before handling) or ``drop_after`` (handle the request — the write happens — then
    close without answering: the client cannot know the outcome).
    """

    action: str = "status"
    method: str | None = None
    path: str = ".*"
    status: int = 500
    code: str | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    after: int = 0
    times: int | None = 1
    seen: int = 0

    def matches(self, request: Request) -> bool:
        if self.method and self.method.upper() != request.method:
            return False
        return re.search(self.path, request.path) is not None

    @classmethod
    def parse(cls, spec: str) -> Fault:
        """Parse the CLI form ``action[:key=value,...]``, e.g. ``status:status=429,headers.Retry-After=1``."""
        action, _, rest = spec.partition(":")
        kwargs: dict[str, Any] = {"action": action or "status", "headers": {}}
        for item in filter(None, rest.split(",")):
            key, _, value = item.partition("=")
            if key.startswith("headers."):
                kwargs["headers"][key[8:]] = value
            elif key in {"status", "after"}:
                kwargs[key] = int(value)
            elif key == "times":
                kwargs[key] = None if value in {"", "inf", "forever"} else int(value)
            elif key == "seconds":
                kwargs[key] = float(value)
            else:
                kwargs[key] = value
        return cls(**kwargs)


class SandboxApp:
    """Base class of a service emulator: routes, fault injection, a request log and an admin API.

    Subclasses register routes in ``__init__`` with ``self.route(method, pattern, handler)``;
    ``pattern`` is a regex over the decoded path with named groups passed as ``request.params``.
    Admin endpoints live under ``/__sandbox__/``: ``POST faults`` adds a rule (JSON of ``Fault``),
    ``DELETE faults`` clears them, ``GET requests`` returns the request log.
    """

    name = "sandbox"
    #: Serve over HTTPS with a throw-away CA (e.g. because the official client insists on https).
    tls = False
    #: Seconds each request waits before it is handled: a real service's round trip, for benchmarks.
    latency = 0.0
    #: Requests one credential may have in flight at once; beyond it the answer is 429, as real
    #: services throttle. ``None``: no cap.
    max_in_flight: int | None = None

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.faults: list[Fault] = []
        self.requests: list[LoggedRequest] = []
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._in_flight: dict[str, int] = {}
        #: The most requests each credential had in flight at once (tests of shared budgets read it).
        self.peak_in_flight: dict[str, int] = {}
        self.route("POST", r"/__sandbox__/faults", self._admin_add_fault)
        self.route("DELETE", r"/__sandbox__/faults", self._admin_clear_faults)
        self.route("GET", r"/__sandbox__/requests", self._admin_requests)

    # -- for subclasses ----------------------------------------------------------------------

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append((method.upper(), re.compile(f"^{pattern}$"), handler))

    def error(self, status: int, code: str, message: str, request: Request | None = None) -> Response:
        """The service's own error body; subclasses override to match their documented shape."""
        return Response.json({"error": {"code": code, "message": message}}, status)

    def account_settings(self, base_url: str) -> dict[str, Any]:
        """Settings that point an account of this plugin at this sandbox (for demo and tests)."""
        return {}

    def account_secrets(self) -> dict[str, str]:
        """Secrets a non-interactive demo account needs against this sandbox (never real ones)."""
        return {}

    # -- fault injection ---------------------------------------------------------------------

    def add_fault(self, fault: Fault | str | dict[str, Any]) -> Fault:
        if isinstance(fault, str):
            fault = Fault.parse(fault)
        elif isinstance(fault, dict):
            fault = Fault(**fault)
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def _fire(self, request: Request) -> Fault | None:
        if request.path.startswith("/__sandbox__/"):
            return None
        with self.lock:
            for fault in self.faults:
                if not fault.matches(request):
                    continue
                fault.seen += 1
                if fault.seen <= fault.after:
                    continue
                if fault.times is not None and fault.seen - fault.after > fault.times:
                    continue
                return fault
        return None

    # -- dispatch ----------------------------------------------------------------------------

    def credential(self, request: Request) -> str:
        """Who is calling, for ``max_in_flight``: the ``Authorization`` or ``ApiKey`` header."""
        return request.headers.get("authorization") or request.headers.get("apikey") or ""

    def handle(self, request: Request) -> Response:
        if request.path.startswith("/__sandbox__/"):
            return self._handle(request)  # the admin API is never slowed or throttled
        who = self.credential(request)
        with self.lock:
            busy = self._in_flight.get(who, 0)
            if self.max_in_flight is not None and busy >= self.max_in_flight:
                response = self.error(429, "TooManyRequests", f"more than {self.max_in_flight} requests in flight",
                                      request)
                self.requests.append(LoggedRequest(request.method, request.path, 429, request.received))
                return response
            self._in_flight[who] = busy + 1
            self.peak_in_flight[who] = max(self.peak_in_flight.get(who, 0), busy + 1)
        try:
            if self.latency:
                time.sleep(self.latency)
            return self._handle(request)
        finally:
            with self.lock:
                self._in_flight[who] -= 1

    def _handle(self, request: Request) -> Response:
        fault = self._fire(request)
        if fault is not None:
            if fault.action == "drop":
                raise DropConnection
            if fault.action == "delay":
                time.sleep(fault.seconds)
            elif fault.action == "status":
                response = (
                    Response.json(fault.body, fault.status) if fault.body is not None
                    else self.error(fault.status, fault.code or _default_code(fault.status), "injected fault", request)
                )
                response.headers.update(fault.headers)
                self._log(request, response.status)
                return response
        response = self._dispatch(request)
        if fault is not None and fault.action == "drop_after":
            raise DropConnection
        self._log(request, response.status)
        return response

    def _dispatch(self, request: Request) -> Response:
        allowed = False
        for method, pattern, handler in self._routes:
            match = pattern.match(request.path)
            if not match:
                continue
            if method != request.method:
                allowed = True
                continue
            request.params = match.groupdict()
            return handler(request)
        if allowed:
            return self.error(405, "MethodNotAllowed", f"{request.method} is not allowed on {request.path}", request)
        return self.error(404, "NotFound", f"no route for {request.method} {request.path}", request)

    def _log(self, request: Request, status: int) -> None:
        with self.lock:
            self.requests.append(LoggedRequest(request.method, request.path, status, request.received))

    def count(self, method: str, path_regex: str) -> int:
        """How many requests matched; tests use it to prove "a re-run writes nothing"."""
        with self.lock:
            return sum(1 for m, p, _ in self.requests if m == method and re.search(path_regex, p))

    def _admin_add_fault(self, request: Request) -> Response:
        fault = self.add_fault(request.json())
        return Response.json({"added": fault.action})

    def _admin_clear_faults(self, request: Request) -> Response:
        self.clear_faults()
        return Response.json({"cleared": True})

    def _admin_requests(self, request: Request) -> Response:
        with self.lock:
            return Response.json([{"method": r[0], "path": r[1], "status": r[2], "started": r.started, "ended": r.ended}
                                  for r in self.requests])


def _default_code(status: int) -> str:
    return {429: "TooManyRequests", 500: "InternalServerError", 503: "ServiceUnavailable"}.get(status, "Error")


def file_chunks(handle: BinaryIO, size: int = 1024 * 1024) -> Iterator[bytes]:
    while chunk := handle.read(size):
        yield chunk
