"""Billit's OAuth 2.0 as the emulator plays it: the logon page and ``POST /OAuth2/token``.

- ``/Account/Logon?client_id&redirect_uri&state`` shows a login form; approving redirects to
  ``redirect_uri?code=...&state=...`` (refusing: ``?error=access_denied``). A code lives 10
  minutes and works once, for the client and redirect URI it was issued to.
- Like Billit, the logon page refuses a ``redirect_uri`` that is not registered for the client
  exactly, and one with query parameters even when registered (they belong in ``state``). The
  demo client has core's default loopback URI registered; the sandbox options ``redirect_uris``
  (replaces it) and ``lenient_redirects`` (any http(s) URI) change that.
- The token endpoint (core's ``TokenServer``) takes JSON or a form: ``grant_type=authorization_code``
  (``code``, ``client_id``, ``client_secret``, ``redirect_uri``) or ``grant_type=refresh_token``
  (``refresh_token``, ``client_id``, ``client_secret``) and answers
  ``{"token_type": "Bearer", "expires_in": 3600, "access_token", "refresh_token"}``.
- Refresh tokens never expire but are single-use: each refresh returns a new one and the old
  one is refused from then on.
"""

from __future__ import annotations

import html
import urllib.parse
from collections.abc import Callable
from typing import Any

from invoicesync.sandbox import (
    CODE_LIFETIME,
    IssuedAccess,
    OAuthClient,
    RedirectRegistry,
    Refusals,
    Request,
    Response,
    TokenError,
    TokenServer,
    with_query,
)

__all__ = ["CODE_LIFETIME", "AccessToken", "OAuthClient", "OAuthState"]

AccessToken = IssuedAccess  # the name this module used to give it


def _refused(status: int, oauth_code: str, code: str, description: str) -> TokenError:
    return TokenError(status, oauth_code, description, code)


class OAuthState(TokenServer[OAuthClient]):
    refusals = Refusals(
        unsupported_grant=_refused(400, "unsupported_grant_type", "UnsupportedGrantType",
                                   "grant_type must be authorization_code or refresh_token."),
        unknown_client=_refused(400, "invalid_client", "InvalidClient", "Unknown client or wrong client_secret."),
        bad_code=_refused(400, "invalid_grant", "InvalidCode", "The code is unknown, used or expired."),
        code_mismatch=_refused(400, "invalid_grant", "InvalidCode",
                               "The code was issued to another client or redirect_uri."),
        bad_refresh=_refused(400, "invalid_grant", "InvalidRefreshToken",
                             "The refresh token is unknown or was already used."),
        refresh_other_client=_refused(400, "invalid_grant", "InvalidRefreshToken",
                                      "The refresh token belongs to another client."),
        bad_body=_refused(400, "", "GenericError", "The token request body could not be read."),
    )
    accept_json = True  # the docs show JSON; the swagger says a form works too
    rotate_refresh = True

    def __init__(self, *, clients: list[OAuthClient], users: dict[str, str], token_lifetime: float = 3600.0) -> None:
        self.clients: dict[str, OAuthClient]
        super().__init__({c.client_id: c for c in clients}, token_lifetime)
        self.users = users
        #: Called once per access token, on its first use: ``(access_token, its refresh_token)``.
        self.on_first_use: Callable[[str, str], None] | None = None

    @property
    def token_lifetime(self) -> float:
        return self.access_lifetime

    def render(self, error: TokenError, request: Request) -> Response:
        # Billit's own error list, plus the RFC 6749 fields generic OAuth clients look for.
        body: dict[str, Any] = {"errors": [{"Code": error.code, "Description": error.description}]}
        if error.error:
            body.update(error=error.error, error_description=error.description)
        return Response.json(body, error.status)

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
        if redirect_uri and urllib.parse.urlsplit(redirect_uri).query:
            # Billit: "own query params are not allowed in redirect_uri; put them in state".
            return "The redirect_uri may not carry query parameters; put them in state."
        return self.clients[client_id].redirects.problem(redirect_uri)

    @staticmethod
    def redirect(redirect_uri: str, params: dict[str, str | None]) -> str:
        return with_query(redirect_uri, params)

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

    # -- tokens ------------------------------------------------------------------------------

    def issue(self, client_id: str) -> dict[str, Any]:
        """A fresh access + refresh token pair for ``client_id``, as after the logon page."""
        return self.issue_tokens("authorization_code", client_id)

    def check_bearer(self, token: str) -> str | None:
        """``None`` if the token is good, else Billit's error code for it."""
        with self.lock:
            access, problem = self.lookup(token)
            if access is None or problem:
                return {"revoked": "AccessTokenRevoked", "expired": "AccessTokenExpired"}.get(
                    problem or "", "InvalidAccessToken")
            first_use = not access.used
            access.used = True
        if first_use and self.on_first_use is not None:
            self.on_first_use(token, access.refresh_token or "")
        return None
