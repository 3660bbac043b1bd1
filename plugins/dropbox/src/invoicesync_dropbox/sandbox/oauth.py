"""The sandbox's OAuth 2 server: ``/oauth2/authorize`` (approves at once, for tests and demos)
and ``/oauth2/token`` (core's ``TokenServer``: authorization code with PKCE S256 or app secret,
in the form or as HTTP Basic; refresh token, which Dropbox never rotates, with an optional
narrower ``scope``), plus the bearer check every API route makes (``invalid_access_token``,
``expired_access_token``, ``missing_scope``).

As strict as Dropbox: a ``redirect_uri`` must match one registered for the app exactly (the
default registration is core's default loopback URI; sandbox options ``redirect_uris`` and
``lenient_redirects`` change it), codes work once within 10 minutes, access tokens live 4 hours."""

from __future__ import annotations

import time
from typing import Any

from invoicesync.sandbox import (
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


class AuthFailedError(Exception):
    """A 401 with an AuthError union (``{".tag": tag, ...extra}``)."""

    def __init__(self, tag: str, **extra: str) -> None:
        super().__init__(tag)
        self.error = {".tag": tag, **extra}


_BAD_CLIENT = TokenError(400, "invalid_client", "Invalid client_id or client_secret")


class OAuthServer(TokenServer[OAuthClient]):
    refusals = Refusals(
        unsupported_grant=TokenError(400, "unsupported_grant_type", "grant_type {grant!r} is not supported"),
        unknown_client=_BAD_CLIENT,
        bad_code=TokenError(400, "invalid_grant", "code doesn't exist or has expired"),
        code_mismatch=TokenError(400, "invalid_grant", "redirect_uri mismatch"),
        bad_verifier=TokenError(400, "invalid_grant", "invalid code verifier"),
        no_client_auth=TokenError(400, "invalid_request", "No auth function available for given request"),
        bad_refresh=TokenError(400, "invalid_grant", "refresh token is invalid or revoked"),
        scope_exceeds=TokenError(400, "invalid_scope", "scope exceeds what was granted"),
        # OAuth 2 token requests are form-encoded (RFC 6749 §4.1.3), never JSON.
        not_form=TokenError(400, "invalid_request", "the token request must be application/x-www-form-urlencoded"),
    )
    last_value_wins = True
    basic_auth = True  # app key and secret may come as HTTP Basic
    public_clients = True  # PKCE apps send no secret
    refresh_scope = True
    token_type = "bearer"
    access_prefix = "sl."
    refresh_bytes = 40

    def __init__(self, app_key: str, app_secret: str | None, scopes: str, access_ttl: int = 14400,
                 redirects: RedirectRegistry | None = None) -> None:
        self.app = OAuthClient(app_key, app_secret)
        if redirects is not None:
            self.app.redirects = redirects
        super().__init__({app_key: self.app}, access_ttl)
        self.scopes = scopes
        self.account_id = "dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc"

    @property
    def app_key(self) -> str:
        return self.app.client_id

    @property
    def app_secret(self) -> str | None:
        return self.app.secret

    @property
    def access_ttl(self) -> int:
        return int(self.access_lifetime)

    @property
    def redirects(self) -> RedirectRegistry:
        return self.app.redirects

    @redirects.setter
    def redirects(self, registry: RedirectRegistry) -> None:
        self.app.redirects = registry

    def extra_fields(self, grant: str, access: IssuedAccess) -> dict[str, Any]:
        # A refresh answers access_token, token_type and expires_in only (and no new refresh token).
        if grant == "refresh_token":
            return {}
        return {"scope": access.scope, "uid": "12345", "account_id": self.account_id}

    # -- tokens ----------------------------------------------------------------------------------

    def issue_demo_tokens(self) -> tuple[str, str, float]:
        """A ready login for demo accounts: (access token, refresh token, expires_at)."""
        body = self.issue_tokens("authorization_code", self.app_key, self.scopes)
        return body["access_token"], body["refresh_token"], time.time() + body["expires_in"]

    def expire_access_tokens(self) -> None:
        """Make every access token expired (refresh tokens stay valid), to test refreshing."""
        self.expire_all()

    def check(self, request: Request, scope: str | None) -> None:
        header = request.headers.get("Authorization", "")
        kind, _, token = header.partition(" ")
        if kind.lower() != "bearer" or not token:
            raise AuthFailedError("invalid_access_token")
        access, problem = self.lookup(token.strip())
        if access is None or problem == "revoked":
            raise AuthFailedError("invalid_access_token")
        if problem == "expired":
            raise AuthFailedError("expired_access_token")
        if scope and scope not in access.scope.split():
            raise AuthFailedError("missing_scope", required_scope=scope)

    # -- the authorize page ----------------------------------------------------------------------

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
        code = self.issue_code(q["client_id"], redirect or None, scope=q["scope"] or self.scopes,
                               challenge=q["code_challenge"], offline=q["token_access_type"] == "offline")
        if not redirect:  # no redirect: Dropbox shows the code for the user to copy
            return Response.text(f"Your access code: {code}", 200, "text/html; charset=utf-8")
        return Response.redirect(with_query(redirect, {"code": code, "state": q["state"] or None}))

    def _redirect_error(self, redirect: str, state: str, error: str, description: str) -> Response:
        if not redirect:
            return Response.text(f"{error}: {description}", 400)
        return Response.redirect(with_query(redirect, {"error": error, "error_description": description,
                                                       "state": state or None}))
