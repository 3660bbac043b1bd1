"""OAuth 2.0 as a core service: authorization code with PKCE, loopback redirect, refresh.

Refresh tokens may be single-use (Billit rotates them). ``TokenAuth`` therefore stores the new
token set durably *before* the new access token is used, so a crash can never lose the login.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import secrets as pysecrets
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any, Protocol

import httpx
from pydantic import BaseModel

from ..errors import AuthError
from ._client import HttpClient


class TokenSet(BaseModel):
    access_token: str
    refresh_token: str | None = None
    expires_at: float | None = None
    token_type: str = "Bearer"
    scope: str | None = None

    @classmethod
    def from_response(cls, body: dict[str, Any], *, previous: TokenSet | None = None) -> TokenSet:
        if "access_token" not in body:
            raise AuthError("the token endpoint answered without an access_token")
        expires_in = body.get("expires_in")
        return cls(
            access_token=body["access_token"],
            # Keep the old refresh token when the server does not rotate it.
            refresh_token=body.get("refresh_token") or (previous.refresh_token if previous else None),
            expires_at=time.time() + float(expires_in) if expires_in else None,
            token_type=body.get("token_type") or "Bearer",
            scope=body.get("scope"),
        )

    def expires_within(self, seconds: float) -> bool:
        return self.expires_at is not None and self.expires_at - time.time() <= seconds


class SecretSlot(Protocol):
    """Where a token set is kept (``AccountSecrets`` implements this)."""

    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str) -> None: ...


class PKCE:
    """An S256 code verifier and its challenge (RFC 7636)."""

    def __init__(self) -> None:
        self.verifier = pysecrets.token_urlsafe(48)  # 64 characters of [A-Za-z0-9_-], as RFC 7636 allows
        digest = hashlib.sha256(self.verifier.encode("ascii")).digest()
        self.challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class OAuth2Client:
    """Builds authorize URLs and talks to a token endpoint through the shared ``HttpClient``."""

    def __init__(
        self,
        http: HttpClient,
        *,
        token_url: str,
        client_id: str,
        client_secret: str | None = None,
        basic_auth: bool = False,
        json_body: bool = False,
        extra_refresh_params: dict[str, str] | None = None,
    ) -> None:
        self.http = http
        self.token_url = token_url
        self.client_id = client_id
        self.client_secret = client_secret
        self.basic_auth = basic_auth
        #: Send the token request as JSON (some services, e.g. Billit, document that) instead of a
        #: form. A 415 answer means nothing was processed, so the form is then sent once.
        self.json_body = json_body
        self.extra_refresh_params = extra_refresh_params or {}

    def authorization_url(self, authorize_url: str, **params: str | None) -> str:
        parts = urllib.parse.urlsplit(authorize_url)
        query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        query += [(k, v) for k, v in params.items() if v is not None]
        return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))

    def exchange_code(self, code: str, redirect_uri: str, *, verifier: str | None = None) -> TokenSet:
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        if verifier:
            data["code_verifier"] = verifier
        return TokenSet.from_response(self._post(data))

    def refresh(self, token: TokenSet) -> TokenSet:
        if not token.refresh_token:
            raise AuthError("the login has no refresh token; connect the account again")
        data = {"grant_type": "refresh_token", "refresh_token": token.refresh_token, **self.extra_refresh_params}
        return TokenSet.from_response(self._post(data), previous=token)

    def _post(self, data: dict[str, str]) -> dict[str, Any]:
        auth = None
        if self.basic_auth and self.client_secret:
            auth = (self.client_id, self.client_secret)
        else:
            data = {**data, "client_id": self.client_id}
            if self.client_secret:
                data["client_secret"] = self.client_secret
        response = self._send(data, auth, as_json=self.json_body)
        if self.json_body and response.status_code == 415:
            response = self._send(data, auth, as_json=False)
        body = _json_or_empty(response)
        if not response.is_success:
            reason = body.get("error_description") or body.get("error")
            if not reason and self.http.error_parser is not None:
                reason = str(self.http.error_parser(response))  # the service's own error shape
            raise AuthError(f"{self.http.service}: the token endpoint refused the request "
                            f"({reason or response.reason_phrase})")
        return body


    def _send(self, data: dict[str, str], auth: tuple[str, str] | None, *, as_json: bool) -> httpx.Response:
        content, content_type = ((json.dumps(data).encode(), "application/json") if as_json
                                 else (urllib.parse.urlencode(data).encode(), "application/x-www-form-urlencoded"))
        # Token calls are never resent blind: a lost answer may have consumed a refresh token.
        return self.http.request(
            "POST", self.token_url, content=content,
            headers={"Content-Type": content_type, "Accept": "application/json", **_basic(auth)},
            idempotent=False, check=False,
        )


class TokenAuth:
    """An ``Authenticator`` that keeps a token set in a secret slot and refreshes it in time."""

    def __init__(
        self,
        slot: SecretSlot,
        refresh: Callable[[TokenSet], TokenSet],
        *,
        key: str = "oauth_token",
        header: str = "Authorization",
        scheme: str = "Bearer",
        early: float = 300.0,
    ) -> None:
        self.slot = slot
        self._refresh = refresh
        self.key = key
        self.header = header
        self.scheme = scheme
        self.early = early
        # Shared by every TokenAuth over the same secret: two of them must never both spend one
        # single-use refresh token.
        self._lock = _slot_lock(slot, key)
        self._used = threading.local()  # the access token this thread last sent

    def current(self) -> TokenSet:
        raw = self.slot.get(self.key)
        if not raw:
            raise AuthError("not logged in; run `invoicesync connect` for this account")
        return TokenSet.model_validate_json(raw)

    def store(self, token: TokenSet) -> None:
        self.slot.set(self.key, token.model_dump_json())

    def apply(self, request: httpx.Request) -> None:
        token = self.current()
        if token.expires_within(self.early):
            token = self._renew(refused=None)
        self._used.token = token.access_token
        request.headers[self.header] = f"{self.scheme} {token.access_token}".strip()

    def refresh(self) -> bool:
        self._renew(refused=getattr(self._used, "token", None))
        return True

    def _renew(self, *, refused: str | None) -> TokenSet:
        """Refresh once per refused (or expiring) token, however many threads notice it."""
        with self._lock:
            token = self.current()
            if refused is not None and token.access_token != refused:
                return token  # another thread already replaced the refused token
            if refused is None and not token.expires_within(self.early):
                return token
            new = self._refresh(token)
            self.store(new)  # durable before first use: the old refresh token is spent now
            return new


_SLOT_LOCKS = [threading.Lock() for _ in range(64)]


def _slot_lock(slot: SecretSlot, key: str) -> threading.Lock:
    owner = getattr(slot, "account", None) or id(slot)
    return _SLOT_LOCKS[hash((owner, key)) % len(_SLOT_LOCKS)]


class _CallbackHandler(http.server.BaseHTTPRequestHandler):
    server: _CallbackServer

    def do_GET(self) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        if parsed.path != "/callback":
            self.send_error(404)
            return
        self.server.result = dict(urllib.parse.parse_qsl(parsed.query))
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
    result: dict[str, str]
    done: threading.Event


def authorize_in_browser(
    ui: Any,
    build_url: Callable[[str, str], str],
    *,
    no_browser: bool = False,
    timeout: float = 300.0,
    port: int = 0,
) -> tuple[str, str]:
    """Run the browser step of the authorization-code flow and return ``(code, redirect_uri)``.

    ``build_url(redirect_uri, state)`` makes the authorize URL. The code arrives on a loopback
    redirect (RFC 8252); with ``no_browser`` the user pastes the URL they were redirected to.
    ``state`` is checked either way. ``port`` fixes the loopback port for services that want the
    redirect URI registered exactly (0: any free port).
    """
    server = _CallbackServer(("127.0.0.1", port), _CallbackHandler)
    server.done = threading.Event()
    server.result = {}
    redirect_uri = f"http://127.0.0.1:{server.server_address[1]}/callback"
    state = pysecrets.token_urlsafe(24)
    url = build_url(redirect_uri, state)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        if not no_browser and ui.open_url(url):
            ui.echo("Waiting for the login to finish in the browser…")
            if not server.done.wait(timeout):
                raise AuthError("no login came back from the browser in time; try --no-browser")
            params = server.result
        else:
            ui.echo(f"Open this URL in a browser and log in:\n\n  {url}\n")
            pasted = ui.prompt("Paste the full URL the browser was sent to after the login")
            params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(pasted.strip()).query))
    finally:
        server.shutdown()
        server.server_close()
    if "error" in params:
        raise AuthError(f"the login was refused: {params.get('error_description') or params['error']}")
    if params.get("state") != state:
        raise AuthError("the login answer does not match this request (state mismatch); try again")
    code = params.get("code")
    if not code:
        raise AuthError("the login answer carries no authorization code")
    return code, redirect_uri


def _basic(auth: tuple[str, str] | None) -> dict[str, str]:
    if auth is None:
        return {}
    token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _json_or_empty(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
