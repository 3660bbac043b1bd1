"""Closed by default: every page needs a logged-in admin, every POST a valid CSRF token.

``LoginRequired`` is a pure ASGI middleware (so server-sent events stream through it untouched).
It lets through only the public paths (login, health, static files); ``/metrics`` also takes HTTP
Basic auth with an admin's password, for Prometheus. For a POST it reads the form body, compares its
``csrf`` field with the session's token, and replays the body to the endpoint.

Behind a reverse proxy that logs people in itself (SSO, ``ProxyLogin``), the user it names in a
header (``X-Forwarded-User``) is logged in, but only on requests from the configured proxy
addresses: the header from anywhere else is refused, so nobody reaching the port directly can
claim a name. Such a session lasts only while the proxy keeps sending the header.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import logging
import secrets
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from ..errors import ConfigError
from ._users import Users

log = logging.getLogger("invoicesync.server.auth")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: ``/oauth/callback`` is where a service sends a login back: that request comes from another
#: site, so the (SameSite=strict) session cookie does not come with it (see ``_oauth_pages``).
#: ``/webhooks/`` is called by a source's service, which has no session: each delivery proves itself
#: with its signature instead (``_webhooks``), so it is outside both the login and the CSRF check.
PUBLIC = ("/login", "/healthz", "/static/", "/oauth/callback", "/webhooks/")
SIGNED_INSTEAD_OF_CSRF = "/webhooks/"
MAX_FORM = 1 << 20  # settings forms are small; a bigger body is refused before it is parsed


def csrf_token(session: MutableMapping[str, Any]) -> str:
    """The session's CSRF token, made on first use."""
    token = session.get("csrf")
    if not isinstance(token, str):
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class ProxyLogin:
    """Log in the user a trusted reverse proxy names in ``header``."""

    header: str
    trusted: tuple[Network, ...]

    @classmethod
    def parse(cls, header: str, proxies: Sequence[str]) -> ProxyLogin:
        """``proxies``: addresses or CIDR ranges (``127.0.0.1``, ``10.0.0.0/24``, ``::1``)."""
        if not proxies:
            raise ConfigError("a login header needs the proxy's address: add --trusted-proxy 127.0.0.1 (or its "
                              "address or network); the header is refused from every other address")
        try:
            trusted = tuple(ipaddress.ip_network(p.strip(), strict=False) for p in proxies)
        except ValueError as exc:
            raise ConfigError(f"--trusted-proxy: {exc}") from None
        return cls(header.strip().lower(), trusted)

    def trusts(self, client: Sequence[Any] | None) -> bool:
        """Whether the peer (the ASGI scope's ``client``: the TCP peer, never a forwarded-for) is a proxy."""
        if not client:
            return False
        try:
            address = ipaddress.ip_address(str(client[0]))
        except ValueError:
            return False  # not an address (a unix socket, a test client): never trusted
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.trusted)

    def user(self, scope: Scope) -> tuple[str | None, str | None]:
        """(the user the proxy names, or None; why the request is refused, or None)."""
        values = [v for k, v in scope["headers"] if k.decode("latin-1").lower() == self.header]
        if not values:
            return None, None
        if not self.trusts(scope.get("client")):
            log.warning("refused a request with a %s header from %s, which is not a trusted proxy",
                        self.header, (scope.get("client") or ["?"])[0])
            return None, f"the {self.header} header is only accepted from the trusted proxy"
        names = {v.decode("utf-8", "replace").strip() for v in values}
        if len(names) != 1 or not next(iter(names)):
            return None, f"the {self.header} header must name one user"
        return names.pop(), None


def _is_public(path: str) -> bool:
    return any(path == p or (p.endswith("/") and path.startswith(p)) for p in PUBLIC)


class LoginRequired:
    def __init__(self, app: ASGIApp, users: Users, proxy: ProxyLogin | None = None) -> None:
        self.app = app
        self.users = users
        self.proxy = proxy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, session = scope["path"], scope["session"]
        if self.proxy is not None:
            proxied, refusal = self.proxy.user(scope)
            if refusal:
                await PlainTextResponse(refusal, status_code=403)(scope, receive, send)
                return
            if proxied and (session.get("user") != proxied or not session.get("proxy")):
                session.clear()  # a new session for the proxy's user: no fixation, no left-over login
                session.update(user=proxied, proxy=True)
                csrf_token(session)
            elif not proxied and session.get("proxy"):
                session.clear()  # the proxy no longer vouches for this browser: its session ends
        elif session.get("proxy"):
            session.clear()  # made by a proxy login, and the server no longer takes one
        if session.get("user") and not session.get("proxy") and not self.users.exists(session["user"]):
            session.clear()  # the user was removed (serve-user remove): its sessions end now
        if not _is_public(path) and not session.get("user"):
            if path == "/metrics" and self._basic_auth_ok(scope):
                await self.app(scope, receive, send)
                return
            response: Response = RedirectResponse(f"/login?next={quote(path)}", status_code=303)
            if path == "/metrics":
                response = PlainTextResponse("login required", status_code=401,
                                             headers={"WWW-Authenticate": 'Basic realm="invoicesync"'})
            await response(scope, receive, send)
            return
        if scope["method"] not in ("GET", "HEAD") and not path.startswith(SIGNED_INSTEAD_OF_CSRF):
            body = await _read_body(receive)
            if body is None or not self._csrf_ok(session, scope, body):
                await PlainTextResponse("bad or missing CSRF token; reload the page and try again",
                                        status_code=403)(scope, receive, send)
                return
            receive = _replay(body)
        await self.app(scope, receive, send)

    @staticmethod
    def _csrf_ok(session: MutableMapping[str, Any], scope: Scope, body: bytes) -> bool:
        expected = session.get("csrf")
        content_type = dict(scope["headers"]).get(b"content-type", b"").split(b";")[0].strip()
        if not isinstance(expected, str) or content_type != b"application/x-www-form-urlencoded":
            return False
        sent = parse_qs(body.decode("utf-8", "replace")).get("csrf", [""])[0]
        return hmac.compare_digest(sent.encode(), expected.encode())

    def _basic_auth_ok(self, scope: Scope) -> bool:
        header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            name, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return self.users.verify(name, password)


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_FORM:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


def _safe_next(target: str | None) -> str:
    # Only a path on this site: never an open redirect to another host.
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def routes(users: Users, render: Callable[..., Response]) -> list[Route]:
    async def login_page(request: Request) -> Response:
        return render(request, "login.html", {"next": _safe_next(request.query_params.get("next")), "error": None})

    async def login(request: Request) -> Response:
        form = await request.form()
        name, password = str(form.get("username", "")), str(form.get("password", ""))
        target = _safe_next(str(form.get("next", "")))
        if not await run_in_threadpool(users.verify, name, password):  # argon2 takes a while: not on the loop
            return render(request, "login.html", {"next": target, "error": "Wrong user name or password."},
                          status_code=401)
        request.session.clear()  # a new session on login: no fixation of a token set before it
        request.session["user"] = name
        csrf_token(request.session)
        return RedirectResponse(target, status_code=303)

    async def logout(request: Request) -> Response:
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    return [
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
    ]
