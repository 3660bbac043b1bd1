"""Google's OAuth endpoints, emulated: an auto-approving consent page, the token endpoint (core's
``TokenServer``: authorization code with PKCE, refresh token, which Google does not rotate; and
JWT bearer for service accounts) and token checks.

As strict as Google: the sandbox client is a Desktop-app client, so a loopback redirect URI on
any port is accepted (RFC 8252 §7.3) and anything else only if registered exactly (sandbox
options ``redirect_uris``, ``lenient_redirects``); a refused one gets ``redirect_uri_mismatch``
and no redirect. Codes work once, within 10 minutes; access tokens live an hour."""

from __future__ import annotations

import secrets
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
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

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CLIENT_ID = "sandbox-client.apps.googleusercontent.com"
CLIENT_SECRET = "sandbox-client-secret"
SERVICE_ACCOUNT = "invoicesync@sandbox-project.iam.gserviceaccount.com"
#: What a Desktop-app client has "registered": loopback, on any port.
LOOPBACK_REDIRECTS = ("http://127.0.0.1/", "http://localhost/")

#: What an access token stands for; ``kind`` is "user", "service_account" (or "session").
Grant = IssuedAccess


class OAuthServer(TokenServer[OAuthClient]):
    refusals = Refusals(
        unsupported_grant=TokenError(400, "unsupported_grant_type", "Invalid grant_type: {grant}"),
        # Google wants the client secret on every code exchange and refresh, Desktop clients too.
        unknown_client=TokenError(401, "invalid_client", "Unauthorized"),
        bad_code=TokenError(400, "invalid_grant", "Bad Request"),  # also: another redirect_uri
        bad_verifier=TokenError(400, "invalid_grant", "Invalid code verifier."),
        bad_refresh=TokenError(400, "invalid_grant", "Token has been expired or revoked."),
    )
    keep_blank = True
    access_prefix = "ya29.sandbox-"
    refresh_prefix = "1//sandbox-"
    access_bytes = refresh_bytes = 24

    def __init__(self, token_ttl: float = 3600.0, redirects: RedirectRegistry | None = None) -> None:
        self.client = OAuthClient(CLIENT_ID, CLIENT_SECRET,
                                  redirects or RedirectRegistry(LOOPBACK_REDIRECTS, any_loopback_port=True))
        super().__init__({CLIENT_ID: self.client}, token_ttl)
        self.self_authenticating[JWT_BEARER] = self._jwt_bearer
        self._service_key: rsa.RSAPrivateKey | None = None
        self.service_key_id = secrets.token_hex(20)

    @property
    def token_ttl(self) -> float:
        return self.access_lifetime

    @property
    def redirects(self) -> RedirectRegistry:
        return self.client.redirects

    @redirects.setter
    def redirects(self, registry: RedirectRegistry) -> None:
        self.client.redirects = registry

    @property
    def service_key(self) -> rsa.RSAPrivateKey:
        # Made on first use: RSA key generation is the slowest thing the sandbox does.
        with self.lock:
            if self._service_key is None:
                self._service_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            return self._service_key

    def extra_fields(self, grant: str, access: IssuedAccess) -> dict[str, Any]:
        return {"scope": access.scope}

    # -- for tests and demo accounts ---------------------------------------------------------

    def issue(self, kind: str = "user", scope: str = "https://www.googleapis.com/auth/drive.file") -> dict[str, Any]:
        return self.issue_tokens("authorization_code", CLIENT_ID, scope, refresh=kind == "user", kind=kind)

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
        return self.valid(token or "")

    # -- endpoints ---------------------------------------------------------------------------

    def authorize(self, request: Request) -> Response:
        """Consent is given at once (there is nobody to click); errors go back like Google's."""
        params = {k: v[0] for k, v in request.query.items()}
        redirect = params.get("redirect_uri", "")
        if params.get("client_id") != CLIENT_ID:
            return Response.text("Error 401: invalid_client\nThe OAuth client was not found.", 401)
        if self.redirects.problem(redirect):
            return Response.text("Error 400: redirect_uri_mismatch", 400)
        state = params.get("state")
        if params.get("response_type") != "code" or not params.get("scope"):
            return Response.redirect(with_query(redirect, {"error": "invalid_request", "state": state}))
        if params.get("code_challenge") and params.get("code_challenge_method") != "S256":
            return Response.redirect(with_query(redirect, {"error": "invalid_request", "state": state}))
        code = self.issue_code(CLIENT_ID, redirect, scope=params["scope"], challenge=params.get("code_challenge"),
                               offline=params.get("access_type", "online") == "offline", prefix="4/sandbox-")
        return Response.redirect(with_query(redirect, {"code": code, "scope": params["scope"], "state": state}))

    def _jwt_bearer(self, form: dict[str, Any], request: Request) -> dict[str, Any]:
        try:
            claims = jwt.decode(str(form.get("assertion", "")), self.service_key.public_key(), algorithms=["RS256"],
                                audience=f"{request.base_url}/token", options={"require": ["iss", "exp", "iat"]})
        except jwt.PyJWTError as exc:
            raise TokenError(400, "invalid_grant", f"Invalid JWT: {exc}") from None
        if claims.get("iss") != SERVICE_ACCOUNT or claims["exp"] - claims["iat"] > 3600:
            raise TokenError(400, "invalid_grant", "Invalid JWT Signature or claims.")
        return self.issue("service_account", str(claims.get("scope") or ""))
