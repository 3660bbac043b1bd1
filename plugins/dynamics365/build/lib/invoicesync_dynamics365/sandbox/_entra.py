"""The Microsoft Entra side of the emulator: what msal reads to get an app-only token.

- ``GET /common/discovery/instance`` (instance discovery, for clients that still ask),
- ``GET /{tenant}/v2.0/.well-known/openid-configuration`` (Entra-style authority) and
  ``GET /{tenant}/.well-known/openid-configuration`` (``oidc_authority``),
- ``POST /{tenant}/oauth2/v2.0/token`` with ``grant_type=client_credentials`` (secret in the
  form body, as msal sends it), answering Entra's error bodies with their AADSTS codes.
"""

from __future__ import annotations

import secrets
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from invoicesync.sandbox import Request, Response

BC_RESOURCE = "https://api.businesscentral.dynamics.com"


@dataclass
class EntraApp:
    client_id: str
    secret: str
    #: Application permissions granted with admin consent (roles in the token).
    roles: set[str] = field(default_factory=lambda: {"API.ReadWrite.All"})
    #: Added on BC's "Microsoft Entra Applications" page with State = Enabled.
    registered_in_bc: bool = True


@dataclass
class IssuedToken:
    client_id: str
    roles: set[str]
    expires_at: float


class Entra:
    """One tenant's token service. ``token_lifetime`` is short in tests that need expiry."""

    def __init__(self, tenant: str, domain: str, token_lifetime: int = 3599) -> None:
        self.tenant = tenant
        self.domain = domain
        self.token_lifetime = token_lifetime
        self.apps: dict[str, EntraApp] = {}
        self.tokens: dict[str, IssuedToken] = {}

    def knows_tenant(self, name: str) -> bool:
        return name.lower() in {self.tenant.lower(), self.domain.lower()}

    def check(self, authorization: str | None) -> IssuedToken | None:
        """The token behind a ``Bearer`` header, if it was issued here and has not expired."""
        if not authorization or not authorization.lower().startswith("bearer "):
            return None
        token = self.tokens.get(authorization[7:].strip())
        if token is None or token.expires_at < time.time():
            return None
        return token

    def revoke_all(self) -> None:
        self.tokens.clear()

    # -- routes --------------------------------------------------------------------------------

    def instance_discovery(self, request: Request) -> Response:
        authorize = request.arg("authorization_endpoint") or f"{request.base_url}/{self.tenant}/oauth2/v2.0/authorize"
        host = urllib.parse.urlsplit(request.base_url).netloc
        path = urllib.parse.urlsplit(authorize).path.split("/")
        tenant = path[1] if len(path) > 1 and path[1] else self.tenant
        return Response.json({
            "tenant_discovery_endpoint": f"{request.base_url}/{tenant}/v2.0/.well-known/openid-configuration",
            "api-version": "1.1",
            "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
        })

    def openid_configuration(self, request: Request) -> Response:
        tenant = request.params["tenant"]
        if not self.knows_tenant(tenant):
            return _entra_error(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found.")
        base = f"{request.base_url}/{self.tenant}"
        return Response.json({
            "issuer": f"{base}/v2.0",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "tenant_region_scope": "EU",
        })

    def token(self, request: Request) -> Response:
        tenant = request.params["tenant"]
        if not self.knows_tenant(tenant):
            return _entra_error(400, "invalid_request", 90002, f"Tenant '{tenant}' not found.")
        form = dict(urllib.parse.parse_qsl(request.body.decode()))
        if form.get("grant_type") != "client_credentials":
            return _entra_error(400, "unsupported_grant_type", 70003,
                                "The app requested an unsupported grant type; this sandbox issues app-only tokens.")
        app = self.apps.get(form.get("client_id", ""))
        if app is None:
            return _entra_error(400, "unauthorized_client", 700016,
                                f"Application with identifier '{form.get('client_id')}' was not found in the "
                                f"directory '{self.domain}'.")
        if not secrets.compare_digest(form.get("client_secret", ""), app.secret):
            return _entra_error(401, "invalid_client", 7000215,
                                "Invalid client secret provided. Ensure the secret being sent in the request is "
                                "the client secret value, not the client secret ID.")
        scope = form.get("scope", "")
        scopes = set(scope.split())
        if not any(s.endswith("/.default") for s in scopes):
            return _entra_error(400, "invalid_scope", 1002012,
                                f"The provided value for scope {scope} is not valid. Client credential flows must "
                                "have a scope value with /.default suffixed to the resource identifier.")
        if f"{BC_RESOURCE}/.default" not in scopes:
            return _entra_error(400, "invalid_resource", 500011,
                                f"The resource principal named {scope} was not found in the tenant.")
        access_token = secrets.token_urlsafe(32)
        self.tokens[access_token] = IssuedToken(app.client_id, set(app.roles), time.time() + self.token_lifetime)
        return Response.json({"token_type": "Bearer", "expires_in": self.token_lifetime,
                              "ext_expires_in": self.token_lifetime, "access_token": access_token})


def _entra_error(status: int, error: str, code: int, description: str) -> Response:
    body: dict[str, Any] = {
        "error": error,
        "error_description": f"AADSTS{code}: {description} Trace ID: {secrets.token_hex(8)} "
                             f"Correlation ID: {secrets.token_hex(8)} Timestamp: {time.strftime('%Y-%m-%d %H:%M:%SZ')}",
        "error_codes": [code],
        "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ"),
        "trace_id": secrets.token_hex(16),
        "correlation_id": secrets.token_hex(16),
    }
    return Response.json(body, status)
