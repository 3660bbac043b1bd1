"""The emulator's login: Billit's logon page, its OAuth token and revoke endpoints, and the admin
route that expires access tokens. The OAuth rules themselves live in ``oauth`` (``OAuthState``).

Routes: ``GET|POST /Account/Logon``, ``POST /OAuth2/token``, ``POST /OAuth2/revoke``,
``POST /__sandbox__/expire-tokens``.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from typing import Any

from invoicesync.sandbox import Request, Response

from .oauth import OAuthState

DEMO_CLIENT_ID = "invoicesync-sandbox"
DEMO_CLIENT_SECRET = "sandbox-client-secret-7d2a"
DEMO_USER = ("demo@billit.test", "demo")


class LoginPages:
    """Mixed into ``BillitSandbox``: its login routes, over the ``oauth`` state it holds."""

    oauth: OAuthState
    error: Callable[..., Response]
    route: Callable[..., None]

    def _init_login(self) -> None:
        #: ``(Content-Type, sent an Authorization header)`` of each token request: Billit's docs
        #: ask for a JSON body and no Authorization header (the emulator accepts a form too).
        self.token_requests: list[tuple[str, bool]] = []
        self.route("GET", r"/Account/Logon", self._logon_page)
        self.route("POST", r"/Account/Logon", self._logon_submit)
        self.route("POST", r"/OAuth2/token", self._token)
        self.route("POST", r"/OAuth2/revoke", self._revoke)
        self.route("POST", r"/__sandbox__/expire-tokens", self._admin_expire)

    def expire_access_tokens(self) -> None:
        self.oauth.expire_all()

    def issue_login(self, client_id: str = DEMO_CLIENT_ID) -> dict[str, Any]:
        """A token answer as if the demo user had approved ``client_id`` on the logon page, for
        tests and scripts that start from a stored OAuth login instead of driving the browser."""
        return self.oauth.issue(client_id)

    def _logon_page(self, request: Request) -> Response:
        client_id, redirect_uri, state = request.arg("client_id"), request.arg("redirect_uri"), request.arg("state")
        problem = self.oauth.logon_problem(client_id, redirect_uri)
        if problem:
            return Response.text(f"<html><body><h1>Billit</h1><p>{problem}</p></body></html>", 400,
                                 "text/html; charset=utf-8")
        assert client_id and redirect_uri
        if request.arg("auto") == "1":  # sandbox convenience: approve as the demo user at once
            code = self.oauth.issue_code(client_id, redirect_uri)
            return Response.redirect(self.oauth.redirect(redirect_uri, {"code": code, "state": state}))
        return Response.text(self.oauth.form(client_id, redirect_uri, state), 200, "text/html; charset=utf-8")

    def _logon_submit(self, request: Request) -> Response:
        form = {k: v[0] for k, v in urllib.parse.parse_qs(request.body.decode(), keep_blank_values=True).items()}
        client_id, redirect_uri, state = form.get("client_id"), form.get("redirect_uri"), form.get("state") or None
        problem = self.oauth.logon_problem(client_id, redirect_uri)
        if problem:
            return Response.text(f"<html><body><p>{problem}</p></body></html>", 400, "text/html; charset=utf-8")
        assert client_id and redirect_uri
        if form.get("decision") == "deny":
            return Response.redirect(self.oauth.redirect(redirect_uri, {"error": "access_denied", "state": state}))
        if self.oauth.users.get(form.get("email", "")) != form.get("password"):
            page = self.oauth.form(client_id, redirect_uri, state, "Wrong e-mail or password.")
            return Response.text(page, 200, "text/html; charset=utf-8")
        code = self.oauth.issue_code(client_id, redirect_uri)
        return Response.redirect(self.oauth.redirect(redirect_uri, {"code": code, "state": state}))

    def _token(self, request: Request) -> Response:
        content_type = (request.headers.get("content-type") or "").lower()
        self.token_requests.append((content_type, request.headers.get("authorization") is not None))
        return self.oauth.token(request)

    def _revoke(self, request: Request) -> Response:
        params = {k: v[0] for k, v in urllib.parse.parse_qs(request.body.decode()).items()}
        self.oauth.revoke(params.get("token", ""))
        return Response.json({})

    def _admin_expire(self, request: Request) -> Response:
        self.expire_access_tokens()
        return Response.json({"expired": True})
