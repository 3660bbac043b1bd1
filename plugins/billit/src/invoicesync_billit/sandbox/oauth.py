"""Billit's OAuth 2.0 as the emulator plays it: the logon page and ``POST /OAuth2/token``.

- ``/Account/Logon?client_id&redirect_uri&state`` shows a login form; approving redirects to
  ``redirect_uri?code=...&state=...`` (refusing: ``?error=access_denied``). A code lives 10
  minutes and works once, for the client and redirect URI it was issued to.
- Like Billit, the logon page refuses a ``redirect_uri`` that is not registered for the client
  exactly. The demo client has core's default loopback URI registered; the sandbox options
  ``redirect_uris`` (replaces it) and ``lenient_redirects`` (any http(s) URI) change that.
- The token endpoint takes JSON or a form: ``grant_type=authorization_code`` (``code``,
  ``client_id``, ``client_secret``, ``redirect_uri``) or ``grant_type=refresh_token``
  (``refresh_token``, ``client_id``, ``client_secret``) and answers
  ``{"token_type": "Bearer", "expires_in": 3600, "access_token", "refresh_token"}``.
- Refresh tokens never expire but are single-use: each refresh returns a new one and the old
  one is refused from then on.
"""

from __future__ import annotations

import html
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from invoicesync.http import DEFAULT_REDIRECT_URI
from invoicesync.sandbox import CODE_LIFETIME, CodeStore, RedirectRegistry

__all__ = ["CODE_LIFETIME", "AccessToken", "OAuthClient", "OAuthState"]


@dataclass
class AccessToken:
    expires_at: float
    refresh_token: str  # the refresh token issued with it (tests check it was stored before use)
    revoked: bool = False
    used: bool = False


def _default_redirects() -> RedirectRegistry:
    return RedirectRegistry([DEFAULT_REDIRECT_URI])


@dataclass
class OAuthClient:
    client_id: str
    secret: str
    redirects: RedirectRegistry = field(default_factory=_default_redirects)


class OAuthState:
    def __init__(self, *, clients: list[OAuthClient], users: dict[str, str], token_lifetime: float = 3600.0) -> None:
        self.clients = {c.client_id: c for c in clients}
        self.users = users
        self.token_lifetime = token_lifetime
        self.codes = CodeStore()
        self.refresh_tokens: dict[str, str] = {}  # live refresh token -> client id
        self.spent_refresh_tokens: set[str] = set()
        self.access_tokens: dict[str, AccessToken] = {}
        self.refreshes = 0
        #: Called once per access token, on its first use: ``(access_token, its refresh_token)``.
        self.on_first_use: Callable[[str, str], None] | None = None
        self.lock = threading.Lock()

    # -- the logon page ----------------------------------------------------------------------

    def configure_redirects(self, options: dict[str, Any]) -> None:
        """Sandbox options ``redirect_uris`` / ``lenient_redirects``, for every client."""
        for client in self.clients.values():
            client.redirects = RedirectRegistry.from_options(options, client.redirects.uris)

    def register_redirect(self, redirect_uri: str) -> None:
        for client in self.clients.values():
            client.redirects.register(redirect_uri)

    def logon_problem(self, client_id: str | None, redirect_uri: str | None) -> str | None:
        if not client_id or client_id not in self.clients:
            return "Unknown client_id."
        return self.clients[client_id].redirects.problem(redirect_uri)

    def issue_code(self, client_id: str, redirect_uri: str) -> str:
        return self.codes.issue(client_id=client_id, redirect_uri=redirect_uri)

    @staticmethod
    def redirect(redirect_uri: str, params: dict[str, str | None]) -> str:
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        return redirect_uri + ("&" if "?" in redirect_uri else "?") + query

    @staticmethod
    def form(client_id: str, redirect_uri: str, state: str | None, error: str = "") -> str:
        def hidden(name: str, value: str | None) -> str:
            return f'<input type="hidden" name="{name}" value="{html.escape(value or "", quote=True)}">'

        notice = f'<p class="error">{html.escape(error)}</p>' if error else ""
        return (
            "<!DOCTYPE html><html><head><title>Billit - Log in</title></head><body>"
            "<h1>Log in to Billit</h1>" + notice
            + '<form method="post" action="/Account/Logon">'
            + hidden("client_id", client_id) + hidden("redirect_uri", redirect_uri) + hidden("state", state)
            + '<label>E-mail <input type="email" name="email"></label>'
            '<label>Password <input type="password" name="password"></label>'
            '<button type="submit" name="decision" value="approve">Log in and approve</button>'
            '<button type="submit" name="decision" value="deny">Deny</button>'
            "</form></body></html>"
        )

    # -- the token endpoint ------------------------------------------------------------------

    def token(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        grant = params.get("grant_type")
        client = self.clients.get(str(params.get("client_id") or ""))
        if client is None or params.get("client_secret") != client.secret:
            return 400, _oauth_error("invalid_client", "InvalidClient", "Unknown client or wrong client_secret.")
        with self.lock:
            if grant == "authorization_code":
                entry = self.codes.redeem(str(params.get("code") or ""))  # single use, even on failure
                if entry is None:
                    return 400, _oauth_error("invalid_grant", "InvalidCode", "The code is unknown, used or expired.")
                if entry["client_id"] != client.client_id or entry["redirect_uri"] != params.get("redirect_uri"):
                    return 400, _oauth_error("invalid_grant", "InvalidCode",
                                             "The code was issued to another client or redirect_uri.")
            elif grant == "refresh_token":
                presented = str(params.get("refresh_token") or "")
                owner = self.refresh_tokens.get(presented)
                if owner is None:
                    return 400, _oauth_error("invalid_grant", "InvalidRefreshToken",
                                             "The refresh token is unknown or was already used.")
                if owner != client.client_id:
                    return 400, _oauth_error("invalid_grant", "InvalidRefreshToken",
                                             "The refresh token belongs to another client.")
                del self.refresh_tokens[presented]
                self.spent_refresh_tokens.add(presented)
                self.refreshes += 1
            else:
                return 400, _oauth_error("unsupported_grant_type", "UnsupportedGrantType",
                                         "grant_type must be authorization_code or refresh_token.")
            return 200, self.issue(client.client_id)

    def issue(self, client_id: str) -> dict[str, Any]:
        """A fresh access + refresh token pair for ``client_id`` (call with ``lock`` held)."""
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self.refresh_tokens[refresh] = client_id
        self.access_tokens[access] = AccessToken(time.time() + self.token_lifetime, refresh)
        return {"token_type": "Bearer", "expires_in": int(self.token_lifetime),
                "access_token": access, "refresh_token": refresh}

    def revoke(self, token: str) -> None:
        with self.lock:
            if token in self.access_tokens:
                self.access_tokens[token].revoked = True
            self.refresh_tokens.pop(token, None)

    def expire_all(self) -> None:
        """Early expiry: every access token issued so far is expired from now on."""
        with self.lock:
            for access in self.access_tokens.values():
                access.expires_at = min(access.expires_at, time.time() - 1)

    def check_bearer(self, token: str) -> str | None:
        """``None`` if the token is good, else Billit's error code for it."""
        with self.lock:
            access = self.access_tokens.get(token)
            if access is None:
                return "InvalidAccessToken"
            if access.revoked:
                return "AccessTokenRevoked"
            if access.expires_at <= time.time():
                return "AccessTokenExpired"
            first_use = not access.used
            access.used = True
        if first_use and self.on_first_use is not None:
            self.on_first_use(token, access.refresh_token)
        return None


def _oauth_error(oauth_code: str, code: str, description: str) -> dict[str, Any]:
    # Billit's own error list, plus the RFC 6749 fields generic OAuth clients look for.
    return {"errors": [{"Code": code, "Description": description}],
            "error": oauth_code, "error_description": description}
