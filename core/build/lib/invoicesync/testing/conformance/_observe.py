"""Watch a sandbox from the inside: when each request arrived, how it was answered, and hooks that
run while the connector is mid-flight (expire a token after the first page, snapshot a secret).

The observer wraps the app's ``handle`` on the instance, so it sees exactly what the loopback
server dispatches, faults included, without the sandbox knowing it is watched.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from ...sandbox import DropConnection, Request, Response, SandboxApp


@dataclass
class Seen:
    """One request the sandbox handled. ``status`` is ``None`` when the connection was dropped."""

    at: float
    method: str
    path: str
    status: int | None
    headers: httpx.Headers
    body: Any = None  #: the JSON answer, when there was one


@dataclass
class _Trigger:
    method: str
    path: re.Pattern[str]
    action: Callable[[], None]
    fired: bool = False


@dataclass
class RequestObserver:
    app: SandboxApp
    seen: list[Seen] = field(default_factory=list)
    #: Called with each incoming request before the sandbox handles it.
    on_request: list[Callable[[Request], None]] = field(default_factory=list)
    _triggers: list[_Trigger] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        original = self.app.handle

        def handle(request: Request) -> Response:
            if request.path.startswith("/__sandbox__/"):
                return original(request)
            for callback in list(self.on_request):
                callback(request)
            try:
                response = original(request)
            except DropConnection:
                self._record(request, None, None)
                raise
            self._record(request, response.status, _json_body(response))
            self._fire(request)
            return response

        self.app.handle = handle  # type: ignore[method-assign]

    def once_after(self, method: str, path_regex: str, action: Callable[[], None]) -> None:
        """Run ``action`` once, right after the first matching request has been answered."""
        with self._lock:
            self._triggers.append(_Trigger(method.upper(), re.compile(path_regex), action))

    def matching(self, method: str | None, path_regex: str) -> list[Seen]:
        pattern = re.compile(path_regex)
        with self._lock:
            return [s for s in self.seen if (method is None or s.method == method.upper()) and pattern.search(s.path)]

    def count(self, method: str | None, path_regex: str) -> int:
        return len(self.matching(method, path_regex))

    def mark(self) -> int:
        """A position in the log, to look only at what came after it."""
        with self._lock:
            return len(self.seen)

    def since(self, mark: int) -> list[Seen]:
        with self._lock:
            return self.seen[mark:]

    def _record(self, request: Request, status: int | None, body: Any) -> None:
        with self._lock:
            self.seen.append(Seen(time.monotonic(), request.method, request.path, status, request.headers, body))

    def _fire(self, request: Request) -> None:
        due = []
        with self._lock:
            for trigger in self._triggers:
                if not trigger.fired and trigger.method == request.method and trigger.path.search(request.path):
                    trigger.fired = True
                    due.append(trigger)
        for trigger in due:
            trigger.action()


def _json_body(response: Response) -> Any:
    if not isinstance(response.body, bytes | bytearray):
        return None
    content_type = next((v for k, v in response.headers.items() if k.lower() == "content-type"), "")
    if "json" not in content_type:
        return None
    try:
        return json.loads(response.body or b"null")
    except ValueError:
        return None
