"""The Microsoft Entra side of the emulator: what msal reads to get an app-only token.

- ``GET /common/discovery/instance`` (instance discovery, for clients that still ask),
- ``GET /{tenant}/v2.0/.well-known/openid-configuration`` (Entra-style authority) and
  ``GET /{tenant}/.well-known/openid-configuration`` (``oidc_authority``),
- ``POST /{tenant}/oauth2/v2.0/token`` with ``grant_type=client_credentials`` (secret in the
  form body, as msal sends it; core's ``TokenServer``), answering Entra's error bodies with their
  AADSTS codes.
"""

from __future__ import annotations

import secrets
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from invoicesync.sandbox import IssuedAccess, Refusals, Request, Response, TokenError, TokenServer

BC_RESOURCE = "https://api.businesscentral.dynamics.com"

#: An app-only token: the app (``client_id``) and its ``roles``.
IssuedToken = IssuedAccess


@dataclass
class EntraApp:
    client_id: str
    secret: str
    #: Application permissions granted with admin consent (roles in the token).
    roles: set[str] = field(default_factory=lambda: {"API.ReadWrite.All"})
    #: Added on BC's "Microsoft Entra Applications" page with State = Enabled.
    registered_in_bc: bool = True


class Entra(TokenServer[EntraApp]):
    """One tenant's token service. ``token_lifetime`` is short in tests that need expiry."""

    grants = ("client_credentials",)
    grant_before_client = True
    last_value_wins = True

    def __init__(self, tenant: str, domain: str, token_lifetime: int = 3599) -> None:
        self.apps: dict[str, EntraApp] = {}
        super().__init__(self.apps, token_lifetime)
        self.tenant = tenant
        self.domain = domain
        self.refusals = Refusals(
            unsupported_grant=TokenError(
                400, "unsupported_grant_type", "The app requested an unsupported grant type; this sandbox issues "
                "app-only tokens.", 70003),
            unknown_client=TokenError(
                400, "unauthorized_client", "Application with identifier '{client_id}' was not found in the "
                f"directory '{domain}'.", 700016),
            bad_secret=TokenError(
                401, "invalid_client", "Invalid client secret provided. Ensure the secret being sent in the request "
                "is the client secret value, not the client secret ID.", 7000215),
        )

    @property
    def token_lifetime(self) -> int:
        return int(self.access_lifetime)

    @property
    def tokens(self) -> dict[str, IssuedAccess]:
        return self.access_tokens

    def knows_tenant(self, name: str) -> bool:
        return name.lower() in {self.tenant.lower(), self.domain.lower()}

    def check(self, authorization: str | None) -> IssuedToken | None:
        """The token behind a ``Bearer`` header, if it was issued here and has not expired."""
        if not authorization or not authorization.lower().startswith("bearer "):
            return None
        return self.valid(authorization[7:].strip())

    # -- the token endpoint's rules ------------------------------------------------------------

    def render(self, error: TokenError, request: Request) -> Response:
        return _entra_error(error.status, error.error, int(error.code or 0), error.description)

    def check_client_scope(self, client: EntraApp, scope: str) -> None:
        scopes = set(scope.split())
        if not any(s.endswith("/.default") for s in scopes):
            raise TokenError(400, "invalid_scope", f"The provided value for scope {scope} is not valid. Client "
                             "credential flows must have a scope value with /.default suffixed to the resource "
                             "identifier.", 1002012)
        if f"{BC_RESOURCE}/.default" not in scopes:
            raise TokenError(400, "invalid_resource", f"The resource principal named {scope} was not found in the "
                             "tenant.", 500011)

    def extra_fields(self, grant: str, access: IssuedAccess) -> dict[str, Any]:
        return {"ext_expires_in": self.token_lifetime}

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
        return super().token(request)


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
