"""The sandbox's OAuth 2 server: ``/oauth2/authorize`` (approves at once, for tests and demos)
and ``/oauth2/token`` (authorization code with PKCE S256 or app secret; refresh token), plus the
bearer check every API route makes (``invalid_access_token``, ``expired_access_token``,
``missing_scope``).

As strict as Dropbox: a ``redirect_uri`` must match one registered for the app exactly (the
default registration is core's default loopback URI; sandbox options ``redirect_uris`` and
``lenient_redirects`` change it), codes work once within 10 minutes, access tokens live 4 hours."""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass

from invoicesync.http import DEFAULT_REDIRECT_URI
from invoicesync.sandbox import CodeStore, RedirectRegistry, Request, Response


class AuthFailedError(Exception):
    """A 401 with an AuthError union (``{".tag": tag, ...extra}``)."""

    def __init__(self, tag: str, **extra: str) -> None:
        super().__init__(tag)
        self.error = {".tag": tag, **extra}


@dataclass
class _Code:
    client_id: str
    redirect_uri: str | None
    challenge: str | None
    scope: str
    offline: bool


@dataclass
class _Access:
    scope: set[str]
    expires: float


class OAuthServer:
    def __init__(self, app_key: str, app_secret: str | None, scopes: str, access_ttl: int = 14400,
                 redirects: RedirectRegistry | None = None) -> None:
        self.app_key = app_key
        self.redirects = redirects or RedirectRegistry([DEFAULT_REDIRECT_URI])
        self.app_secret = app_secret
        self.scopes = scopes
        self.access_ttl = access_ttl
        self.account_id = "dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc"
        self.codes = CodeStore()
        self._refresh: dict[str, str] = {}  # refresh token -> granted scope
        self._access: dict[str, _Access] = {}
        self._lock = threading.Lock()
        self.refreshes = 0

    # -- tokens ----------------------------------------------------------------------------------

    def _issue_access(self, scope: str) -> tuple[str, int]:
        token = "sl." + secrets.token_urlsafe(32)
        self._access[token] = _Access(set(scope.split()), time.time() + self.access_ttl)
        return token, self.access_ttl

    def issue_demo_tokens(self) -> tuple[str, str, float]:
        """A ready login for demo accounts: (access token, refresh token, expires_at)."""
        with self._lock:
            refresh = secrets.token_urlsafe(40)
            self._refresh[refresh] = self.scopes
            access, ttl = self._issue_access(self.scopes)
        return access, refresh, time.time() + ttl

    def expire_access_tokens(self) -> None:
        """Make every access token expired (refresh tokens stay valid), to test refreshing."""
        with self._lock:
            for access in self._access.values():
                access.expires = 0.0

    def revoke_all(self) -> None:
        with self._lock:
            self._access.clear()
            self._refresh.clear()

    def check(self, request: Request, scope: str | None) -> None:
        header = request.headers.get("Authorization", "")
        kind, _, token = header.partition(" ")
        if kind.lower() != "bearer" or not token:
            raise AuthFailedError("invalid_access_token")
        with self._lock:
            access = self._access.get(token.strip())
        if access is None:
            raise AuthFailedError("invalid_access_token")
        if access.expires <= time.time():
            raise AuthFailedError("expired_access_token")
        if scope and scope not in access.scope:
            raise AuthFailedError("missing_scope", required_scope=scope)

    # -- endpoints -------------------------------------------------------------------------------

    def authorize(self, request: Request) -> Response:
        """Approve at once, as if the user clicked "Allow", and redirect back with a code."""
        q = {key: request.arg(key) or "" for key in (
            "client_id", "response_type", "redirect_uri", "state", "token_access_type", "scope",
            "code_challenge", "code_challenge_method")}
        if q["client_id"] != self.app_key:
            return Response.text("Invalid client_id", 400)
        redirect = q["redirect_uri"]
        problem = self.redirects.problem(redirect) if redirect else None
        if problem:  # Dropbox shows an error page; it never redirects to an unregistered URI
            return Response.text(f"Invalid redirect_uri: {problem}", 400)
        if q["response_type"] != "code":
            return self._redirect_error(redirect, q["state"], "unsupported_response_type", "only code is supported")
        if q["code_challenge"] and q["code_challenge_method"] != "S256":
            return self._redirect_error(redirect, q["state"], "invalid_request", "code_challenge_method must be S256")
        if not q["code_challenge"] and not self.app_secret:
            return self._redirect_error(redirect, q["state"], "invalid_request", "this app needs PKCE")
        unknown = set(q["scope"].split()) - set(self.scopes.split())
        if unknown:
            return self._redirect_error(redirect, q["state"], "invalid_scope", f"unknown scope {sorted(unknown)[0]}")
        code = self.codes.issue(grant=_Code(q["client_id"], redirect or None, q["code_challenge"] or None,
                                            q["scope"] or self.scopes, q["token_access_type"] == "offline"))
        if not redirect:  # no redirect: Dropbox shows the code for the user to copy
            return Response.text(f"Your access code: {code}", 200, "text/html; charset=utf-8")
        params = {"code": code, **({"state": q["state"]} if q["state"] else {})}
        return Response.redirect(_add_query(redirect, params))

    def _redirect_error(self, redirect: str, state: str, error: str, description: str) -> Response:
        if not redirect:
            return Response.text(f"{error}: {description}", 400)
        params = {"error": error, "error_description": description, **({"state": state} if state else {})}
        return Response.redirect(_add_query(redirect, params))

    def token(self, request: Request) -> Response:
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            # OAuth 2 token requests are form-encoded (RFC 6749 §4.1.3), never JSON.
            return _token_error("invalid_request", "the token request must be application/x-www-form-urlencoded")
        form = dict(urllib.parse.parse_qsl(request.body.decode("utf-8", "replace")))
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        basic = request.headers.get("Authorization", "")
        if basic.lower().startswith("basic "):
            decoded = base64.b64decode(basic[6:]).decode("utf-8", "replace")
            client_id, _, client_secret = decoded.partition(":")
        if client_id != self.app_key:
            return _token_error("invalid_client", "Invalid client_id or client_secret", 400)
        if client_secret is not None and client_secret != self.app_secret:
            return _token_error("invalid_client", "Invalid client_id or client_secret", 400)
        grant = form.get("grant_type")
        if grant == "authorization_code":
            return self._exchange(form, client_secret is not None)
        if grant == "refresh_token":
            return self._refresh_grant(form)
        return _token_error("unsupported_grant_type", f"grant_type {grant!r} is not supported", 400)

    def _exchange(self, form: dict[str, str], has_secret: bool) -> Response:
        grant = self.codes.redeem(form.get("code", ""))  # single use, even when refused
        if grant is None:
            return _token_error("invalid_grant", "code doesn't exist or has expired")
        code: _Code = grant["grant"]
        if code.redirect_uri != (form.get("redirect_uri") or None):
            return _token_error("invalid_grant", "redirect_uri mismatch")
        if code.challenge is not None:
            verifier = form.get("code_verifier", "")
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if digest != code.challenge:
                return _token_error("invalid_grant", "invalid code verifier")
        elif not has_secret:
            return _token_error("invalid_request", "No auth function available for given request")
        with self._lock:
            access, ttl = self._issue_access(code.scope)
            body: dict[str, object] = {
                "access_token": access, "token_type": "bearer", "expires_in": ttl, "scope": code.scope,
                "uid": "12345", "account_id": self.account_id,
            }
            if code.offline:
                refresh = secrets.token_urlsafe(40)
                self._refresh[refresh] = code.scope
                body["refresh_token"] = refresh
        return Response.json(body)

    def _refresh_grant(self, form: dict[str, str]) -> Response:
        with self._lock:
            granted = self._refresh.get(form.get("refresh_token", ""))
            if granted is None:
                return _token_error("invalid_grant", "refresh token is invalid or revoked")
            scope = form.get("scope") or granted
            if set(scope.split()) - set(granted.split()):
                return _token_error("invalid_scope", "scope exceeds what was granted")
            access, ttl = self._issue_access(scope)
            self.refreshes += 1
        # Dropbox does not send a new refresh token: the old one stays valid.
        return Response.json({"access_token": access, "token_type": "bearer", "expires_in": ttl})


def _token_error(error: str, description: str, status: int = 400) -> Response:
    return Response.json({"error": error, "error_description": description}, status)


def _add_query(url: str, params: dict[str, str]) -> str:
    split = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(split.query) + list(params.items())
    return urllib.parse.urlunsplit(split._replace(query=urllib.parse.urlencode(query)))
