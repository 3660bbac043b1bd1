"""Entra client credentials through msal, wrapped as a core ``Authenticator``.

msal keeps the access token in its own in-memory cache and hands it back until it is about to
expire, so ``apply`` simply asks msal every time. One authenticator (one msal application, one
token cache) per principal serves every batch, thread and account using those credentials for as
long as the workspace is open (``shared_authenticator``, a core ``shared_resource``): a command's
run, or a Celery worker's life, where each task has a context of its own. A new one per batch or
task would fetch the OIDC discovery document and a token again each time. When
Business Central refuses a token anyway (401: revoked, or the app's registration changed)
``refresh`` drops the cached token so the next ``acquire_token_for_client`` goes to Entra for a
fresh one.

msal talks to Entra through ``EntraHttp``, a core ``HttpClient``: a 429, a 5xx or a reset
connection at the token endpoint is retried with core's backoff and ``Retry-After`` rules before
msal sees it (msal itself retries nothing: it raises on a 5xx and reads a 429 as a refusal).
A client-credentials token request commits nothing, so it is safe to send again.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

import httpx
from invoicesync import AuthError, ConfigError, Context, InvoiceSyncError
from invoicesync.http import HttpClient

from .settings import Dynamics365Settings

if TYPE_CHECKING:  # msal (and requests under it) is imported on the first token: a run with nothing to send skips it
    import msal

#: Entra error codes (AADSTS…) that mean the setup is wrong, and what to do about each.
_ENTRA_FIXES: dict[int, str] = {
    700016: "the application (client id) is not found in this tenant: check `client_id` and `tenant`",
    90002: "the tenant is not found: check the `tenant` setting (a GUID or a domain like contoso.onmicrosoft.com)",
    90023: "the tenant is not valid: check the `tenant` setting",
    7000215: "the client secret is wrong: run `invoicesync connect` again and paste the secret *value*",
    7000222: "the client secret has expired: create a new one in the app registration and connect again",
    500011: "Business Central is not available in this tenant, or `scope` is wrong "
    "(expected https://api.businesscentral.dynamics.com/.default)",
    70011: "the scope is not valid: use https://api.businesscentral.dynamics.com/.default",
    1002012: "the scope is not valid: use https://api.businesscentral.dynamics.com/.default",
}


class EntraHttp:
    """The ``http_client`` msal asks for (requests' ``get``/``post`` shape), over a core ``HttpClient``
    so Entra's throttles, 5xx and dropped connections are retried like every other service's."""

    def __init__(self, settings: Dynamics365Settings, *, sleep: Callable[[float], None] = time.sleep) -> None:
        # The configured CA exactly (msal's default, requests, lets REQUESTS_CA_BUNDLE override it).
        self._http = HttpClient(service="entra", verify=settings.ca_bundle or True, timeout=settings.timeout,
                                sleep=sleep)

    def get(self, url: str, params: Any = None, headers: dict[str, str] | None = None,
            timeout: float | None = None, **_: Any) -> httpx.Response:
        return self._http.request("GET", url, params=params, headers=headers, timeout=timeout, check=False)

    def post(self, url: str, params: Any = None, data: Any = None, headers: dict[str, str] | None = None,
             timeout: float | None = None, **_: Any) -> httpx.Response:
        body = urlencode(data) if isinstance(data, dict) else data
        form = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
        # Every POST msal makes here is a token request: it commits nothing, so resending is safe.
        return self._http.request("POST", url, params=params, content=body, headers=form, timeout=timeout,
                                  idempotent=True, check=False)

    def close(self) -> None:
        self._http.close()


class MsalAuthenticator:
    """Puts an Entra app token on every request; renews it through msal."""

    def __init__(self, settings: Dynamics365Settings, client_secret: str, *,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self._secret = client_secret
        self._app: msal.ConfidentialClientApplication | None = None
        self._lock = threading.Lock()
        self._http = EntraHttp(settings, sleep=sleep)

    def close(self) -> None:
        self._http.close()

    # -- the Authenticator protocol ----------------------------------------------------------

    def apply(self, request: httpx.Request) -> None:
        request.headers["Authorization"] = f"Bearer {self.token()}"

    def refresh(self) -> bool:
        """Forget the cached token (BC refused it); the next ``apply`` fetches a new one."""
        with self._lock:
            if self._app is not None:
                import msal

                cache = self._app.token_cache
                for entry in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
                    cache.remove_at(entry)
        return True

    # -- tokens ------------------------------------------------------------------------------

    def token(self) -> str:
        with self._lock:
            app = self._application()
            try:
                result: dict[str, Any] = app.acquire_token_for_client(scopes=[self.settings.scope])
            except InvoiceSyncError:
                raise  # still throttled or failing after core's retries: transient, not a wrong setup
            except Exception as exc:  # noqa: BLE001 - requests/ssl errors; msal wraps none of them
                raise AuthError(f"Entra token request to {self.settings.authority_host} failed: "
                                f"{type(exc).__name__}: {exc}") from None
        if "access_token" not in result:
            raise AuthError(explain_entra_error(result))
        return str(result["access_token"])

    def _application(self) -> msal.ConfidentialClientApplication:
        if self._app is not None:
            return self._app
        import msal

        settings = self.settings
        if urlsplit(settings.authority_host).scheme != "https":
            raise ConfigError(f"authority_host must be an https URL (msal refuses others): {settings.authority_host}")
        # Entra's own hosts are validated by msal; any other host (a proxy, the local sandbox)
        # is trusted as configured, so msal goes straight to its OIDC discovery document.
        known = urlsplit(settings.authority_host).hostname in msal.authority.WELL_KNOWN_AUTHORITY_HOSTS
        # Any other host: msal's Entra-style discovery ({authority}/v2.0/.well-known/...) first,
        # then plain OIDC discovery ({authority}/.well-known/...), which some stand-ins serve instead.
        attempts: list[dict[str, Any]] = [{"authority": settings.authority,
                                           "instance_discovery": None if known else False}]
        if not known:
            attempts.append({"oidc_authority": settings.authority})
        first_error: ValueError | None = None
        for where in attempts:
            try:
                self._app = msal.ConfidentialClientApplication(
                    settings.client_id,
                    client_credential=self._secret,
                    http_client=self._http,
                    **where,
                )
                return self._app
            except ValueError as exc:  # msal's word for "the discovery document is unreachable"
                first_error = first_error or exc
            except InvoiceSyncError:
                raise  # the authority kept failing through core's retries: transient
            except Exception as exc:  # noqa: BLE001 - connection and TLS errors
                raise AuthError(f"cannot reach the Entra authority {settings.authority}: "
                                f"{type(exc).__name__}: {exc}") from None
        raise AuthError(f"cannot use the Entra authority {settings.authority}: {first_error}") from None


def shared_authenticator(ctx: Context, settings: Dynamics365Settings, client_secret: str) -> MsalAuthenticator:
    """The authenticator for these credentials: made once, then reused by every batch, thread,
    task and account of the workspace that logs in as the same principal, and closed with it."""
    # Keyed by the principal (authority, tenant, app, scope), the secret (a new one after `connect`
    # is a new application: msal's cache holds the old one's token) and what shapes msal's HTTP
    # client (CA, timeout). Two accounts (environments, companies) on one app registration share
    # its token. The secret only as a digest: the key says "same credentials" without holding them.
    key = ("dynamics365", "entra", settings.authority_host, settings.tenant, settings.client_id, settings.scope,
           settings.ca_bundle or "", repr(settings.timeout), hashlib.sha256(client_secret.encode()).hexdigest())
    return ctx.shared_resource(key, lambda: MsalAuthenticator(settings, client_secret))


def explain_entra_error(result: dict[str, Any]) -> str:
    """Turn msal's error dict into a message that says what to fix (never the secret)."""
    codes = [int(c) for c in result.get("error_codes") or [] if str(c).isdigit()]
    for code in codes:
        if code in _ENTRA_FIXES:
            return f"Entra refused the login (AADSTS{code}): {_ENTRA_FIXES[code]}"
    error = result.get("error") or "unknown_error"
    description = str(result.get("error_description") or "").splitlines()[0:1]
    detail = f": {description[0]}" if description else ""
    if error == "invalid_client":
        return f"Entra refused the client credentials (invalid_client{detail}); check `client_id` and the secret"
    return f"Entra refused the login ({error}{detail})"
