"""Google's OAuth endpoints, emulated: an auto-approving consent page, the token endpoint
(authorization code with PKCE, refresh token, JWT bearer for service accounts) and token checks.

As strict as Google: the sandbox client is a Desktop-app client, so a loopback redirect URI on
any port is accepted (RFC 8252 §7.3) and anything else only if registered exactly (sandbox
options ``redirect_uris``, ``lenient_redirects``); a refused one gets ``redirect_uri_mismatch``
and no redirect. Codes work once, within 10 minutes; access tokens live an hour."""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from invoicesync.sandbox import CodeStore, RedirectRegistry, Request, Response

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CLIENT_ID = "sandbox-client.apps.googleusercontent.com"
CLIENT_SECRET = "sandbox-client-secret"
SERVICE_ACCOUNT = "invoicesync@sandbox-project.iam.gserviceaccount.com"
#: What a Desktop-app client has "registered": loopback, on any port.
LOOPBACK_REDIRECTS = ("http://127.0.0.1/", "http://localhost/")


@dataclass
class Grant:
    kind: str  # "user" | "service_account"
    scope: str
    expires_at: float


class OAuthServer:
    def __init__(self, token_ttl: float = 3600.0, redirects: RedirectRegistry | None = None) -> None:
        self.token_ttl = token_ttl
        self.lock = threading.Lock()
        self.redirects = redirects or RedirectRegistry(LOOPBACK_REDIRECTS, any_loopback_port=True)
        self.codes = CodeStore()
        self.refresh_tokens: dict[str, str] = {}  # refresh token → scope
        self.access: dict[str, Grant] = {}
        self.refreshes = 0
        self._service_key: rsa.RSAPrivateKey | None = None
        self.service_key_id = secrets.token_hex(20)

    @property
    def service_key(self) -> rsa.RSAPrivateKey:
        # Made on first use: RSA key generation is the slowest thing the sandbox does.
        with self.lock:
            if self._service_key is None:
                self._service_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            return self._service_key

    # -- for tests and demo accounts ---------------------------------------------------------

    def issue(self, kind: str = "user", scope: str = "https://www.googleapis.com/auth/drive.file") -> dict[str, Any]:
        token = "ya29.sandbox-" + secrets.token_urlsafe(24)
        with self.lock:
            self.access[token] = Grant(kind, scope, time.time() + self.token_ttl)
        body: dict[str, Any] = {"access_token": token, "expires_in": int(self.token_ttl), "token_type": "Bearer",
                                "scope": scope}
        if kind == "user":
            refresh = "1//sandbox-" + secrets.token_urlsafe(24)
            with self.lock:
                self.refresh_tokens[refresh] = scope
            body["refresh_token"] = refresh
        return body

    def service_account_key(self, token_uri: str) -> dict[str, str]:
        """A key file as the Cloud console hands it out (for the sandbox's one service account)."""
        return {"type": "service_account", "project_id": "sandbox-project", "private_key_id": self.service_key_id,
                "private_key": self.service_key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption()).decode(), "client_email": SERVICE_ACCOUNT,
                "client_id": "100000000000000000001", "token_uri": token_uri}

    def check(self, request: Request) -> Grant | None:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else request.arg("access_token")
        with self.lock:
            grant = self.access.get(token or "")
        return grant if grant and grant.expires_at > time.time() else None

    def expire_all(self) -> None:
        """Make every access token stale: the next call must refresh (tests of the 401 path)."""
        with self.lock:
            for grant in self.access.values():
                grant.expires_at = 0

    # -- endpoints ---------------------------------------------------------------------------

    def authorize(self, request: Request) -> Response:
        """Consent is given at once (there is nobody to click); errors go back like Google's."""
        params = {k: v[0] for k, v in request.query.items()}
        redirect = params.get("redirect_uri", "")
        if params.get("client_id") != CLIENT_ID:
            return Response.text("Error 401: invalid_client\nThe OAuth client was not found.", 401)
        if self.redirects.problem(redirect):
            return Response.text("Error 400: redirect_uri_mismatch", 400)
        state = {"state": params["state"]} if "state" in params else {}
        if params.get("response_type") != "code" or not params.get("scope"):
            return Response.redirect(_add(redirect, {"error": "invalid_request", **state}))
        if params.get("code_challenge") and params.get("code_challenge_method") != "S256":
            return Response.redirect(_add(redirect, {"error": "invalid_request", **state}))
        code = self.codes.issue("4/sandbox-", redirect_uri=redirect, scope=params["scope"],
                                challenge=params.get("code_challenge", ""),
                                offline=params.get("access_type", "online"))
        return Response.redirect(_add(redirect, {"code": code, "scope": params["scope"], **state}))

    def token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in urllib.parse.parse_qs(request.body.decode(), keep_blank_values=True).items()}
        grant = form.get("grant_type")
        if grant == JWT_BEARER:
            return self._jwt_bearer(form.get("assertion", ""), request)
        # Google wants the client secret on every code exchange and refresh, Desktop clients too.
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return _oauth_error(401, "invalid_client", "Unauthorized")
        if grant == "authorization_code":
            saved = self.codes.redeem(form.get("code", ""))  # a code works once, for 10 minutes
            if saved is None or saved["redirect_uri"] != form.get("redirect_uri"):
                return _oauth_error(400, "invalid_grant", "Bad Request")
            if saved["challenge"] and _s256(form.get("code_verifier", "")) != saved["challenge"]:
                return _oauth_error(400, "invalid_grant", "Invalid code verifier.")
            body = self.issue("user", saved["scope"])
            if saved["offline"] != "offline":
                body.pop("refresh_token")
            return Response.json(body)
        if grant == "refresh_token":
            with self.lock:
                scope = self.refresh_tokens.get(form.get("refresh_token", ""))
                self.refreshes += 1
            if scope is None:
                return _oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
            body = self.issue("user", scope)
            body.pop("refresh_token")  # Google keeps the refresh token: it does not rotate it
            return Response.json(body)
        return _oauth_error(400, "unsupported_grant_type", f"Invalid grant_type: {grant}")

    def _jwt_bearer(self, assertion: str, request: Request) -> Response:
        try:
            claims = jwt.decode(assertion, self.service_key.public_key(), algorithms=["RS256"],
                                audience=f"{request.base_url}/token", options={"require": ["iss", "exp", "iat"]})
        except jwt.PyJWTError as exc:
            return _oauth_error(400, "invalid_grant", f"Invalid JWT: {exc}")
        if claims.get("iss") != SERVICE_ACCOUNT or claims["exp"] - claims["iat"] > 3600:
            return _oauth_error(400, "invalid_grant", "Invalid JWT Signature or claims.")
        body = self.issue("service_account", str(claims.get("scope") or ""))
        return Response.json(body)


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _add(url: str, params: dict[str, str]) -> str:
    return url + ("&" if "?" in url else "?") + urllib.parse.urlencode(params)


def _oauth_error(status: int, error: str, description: str) -> Response:
    return Response.json({"error": error, "error_description": description}, status)
