"""OAuth parts every sandbox shares, as strict as the real services: registered redirect URIs
(matched exactly) and authorization codes (single use, 10 minutes, bound to what they were
issued for). Leniency exists only when a sandbox is asked for it (``lenient_redirects``)."""

from __future__ import annotations

import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from typing import Any

from ..http._authorize import is_loopback

#: RFC 6749 §4.1.2 recommends at most 10 minutes; Billit documents exactly that.
CODE_LIFETIME = 600.0


def free_loopback_uri(path: str = "/callback") -> str:
    """``http://127.0.0.1:PORT{path}`` on a port that is free at this moment."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


class RedirectRegistry:
    """The redirect URIs registered for one OAuth client.

    Matching is exact (string equality), as Billit and Dropbox do. ``any_loopback_port`` models
    Google's Desktop-app clients, which accept a loopback URI on any port (RFC 8252 §7.3). With
    ``lenient`` any absolute http(s) URI passes (the sandboxes' old behaviour, by option only).
    """

    def __init__(self, uris: Iterable[str] = (), *, any_loopback_port: bool = False, lenient: bool = False) -> None:
        self.uris = list(uris)
        self.any_loopback_port = any_loopback_port
        self.lenient = lenient
        self._free_loopback: str | None = None

    def register(self, uri: str) -> None:
        self.uris.append(uri)

    def register_free_loopback(self, path: str = "/callback") -> str:
        """Register (once per registry) a loopback URI on a port free now, and return it.

        Sandbox account settings use it instead of the plugin's fixed default port, so two
        test runs or demos on one machine never fight over that port.
        """
        if self._free_loopback is None:
            self._free_loopback = free_loopback_uri(path)
            self.register(self._free_loopback)
        return self._free_loopback

    def problem(self, uri: str | None) -> str | None:
        """``None`` if ``uri`` may receive codes, else why not (for the error page)."""
        if not uri:
            return "redirect_uri is required."
        split = urllib.parse.urlsplit(uri)
        if split.scheme not in ("http", "https") or not split.netloc:
            return "redirect_uri must be an absolute http(s) URL."
        if self.lenient or uri in self.uris:
            return None
        if self.any_loopback_port and is_loopback(uri) and any(is_loopback(r) for r in self.uris):
            return None
        return "redirect_uri is not registered for this client (it must match a registered URI exactly)."

    @classmethod
    def from_options(cls, options: dict[str, Any], default: Iterable[str], **kwargs: Any) -> RedirectRegistry:
        """``redirect_uris`` (a list, or comma-separated) replaces the default registration;
        ``lenient_redirects`` turns exact matching off."""
        given = options.get("redirect_uris")
        if isinstance(given, str):
            given = [u.strip() for u in given.split(",") if u.strip()]
        lenient = str(options.get("lenient_redirects", "")).lower() in ("1", "true", "yes", "on")
        return cls(given or default, lenient=lenient, **kwargs)


class CodeStore:
    """Authorization codes: each works once (even a refused attempt spends it) and only within
    ``lifetime`` seconds; ``grant`` holds what it was issued for (client, redirect URI, PKCE)."""

    def __init__(self, lifetime: float = CODE_LIFETIME, clock: Callable[[], float] = time.time) -> None:
        self.lifetime = lifetime
        self.clock = clock
        self._codes: dict[str, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def issue(self, prefix: str = "", **grant: Any) -> str:
        code = prefix + secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = (self.clock() + self.lifetime, grant)
        return code

    def redeem(self, code: str) -> dict[str, Any] | None:
        """The grant of a live code, spending it; ``None`` if unknown, used or expired."""
        with self._lock:
            entry = self._codes.pop(code, None)
        if entry is None or entry[0] < self.clock():
            return None
        return entry[1]
