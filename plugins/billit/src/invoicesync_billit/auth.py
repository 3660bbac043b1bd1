"""Logging in to Billit with OAuth 2.0: Billit's logon page, the code exchange, token refresh.

Billit's facts this module encodes (API notes §2b):
- The login page is ``/Account/Logon`` on ``my.billit.be`` / ``my.sandbox.billit.be`` and takes
  exactly ``client_id``, ``redirect_uri`` and ``state``: no scope, no PKCE, and no parameters of
  our own inside ``redirect_uri``. The redirect URI must be the one registered with Billit
  support, matched exactly (no localhost in production: there it is an https page and the user
  pastes the address they land on; core's ``authorize_in_browser`` runs either flow).
- Tokens come from ``POST /OAuth2/token`` (not under /v1) with a JSON body carrying the client
  credentials and no Authorization header. Access tokens live 3600 s.
- Refresh tokens never expire but are single-use: every refresh returns a new one. Core's
  ``OAuth2Client`` (``rotating_refresh_tokens``) sends a refresh once, once more with the same
  token if the answer was lost, and stores the new set before it is used; ``TokenAuth`` refreshes
  under the state's named lock for the login, so two workers never spend one refresh token.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from dataclasses import dataclass

from invoicesync import AuthError, AuthStart, ConfigError, Context
from invoicesync.http import (
    CodeFlow,
    OAuth2Client,
    TokenAuth,
    TokenSet,
    relogin_command,
    secret_for_login,
)

from .client import SERVICE, parse_error
from .settings import BillitSettings

TOKEN_PATH = "/OAuth2/token"
LOGON_PATH = "/Account/Logon"
TOKEN_KEY = "oauth_token"
CLIENT_SECRET_KEY = "client_secret"


def oauth_client(ctx: Context, settings: BillitSettings) -> OAuth2Client:
    http = ctx.http(settings.api_base(), service=SERVICE, error_parser=parse_error, max_attempts=3)
    if not settings.client_id:
        raise ConfigError("Billit OAuth needs `client_id` in the account settings (Billit support issues "
                          "it with a client secret), or set `auth = \"api_key\"`")
    # Billit documents a JSON body with the client credentials in it and no Authorization header
    # (its Swagger also lists the form, which core falls back to on a 415).
    return OAuth2Client(http, token_url=TOKEN_PATH, client_id=settings.client_id,
                        client_secret=ctx.secrets.get(CLIENT_SECRET_KEY), json_body=True,
                        rotating_refresh_tokens=True, relogin=relogin_command(ctx.account))


def token_auth(ctx: Context, settings: BillitSettings) -> TokenAuth:
    """The OAuth authenticator: refreshes through ``POST /OAuth2/token`` with
    ``grant_type=refresh_token, refresh_token, client_id, client_secret``."""
    oauth = oauth_client(ctx, settings)
    # Billit access tokens live 3600 s; renew a minute early rather than five.
    return TokenAuth(ctx.secrets, oauth.refresh, key=TOKEN_KEY, early=60.0, relogin=relogin_command(ctx.account))


def client_secret(ctx: Context) -> None:
    """The OAuth client secret, typed or from the environment, kept in the secret store: every
    later refresh needs it, and a later sync may not have that environment."""
    secret_for_login(ctx, CLIENT_SECRET_KEY, "Billit OAuth client secret (from Billit support)")


def code_flow(ctx: Context, settings: BillitSettings) -> CodeFlow:
    """Billit's logon page and code exchange, for the terminal (``login_with_browser``) and the
    dashboard (``auth_begin``/``auth_complete``) alike."""
    oauth = oauth_client(ctx, settings)

    def keep(token: TokenSet) -> None:
        if not token.refresh_token:
            raise AuthError("Billit answered the login without a refresh token; the login could not be kept")
        # Under the login's lock: a worker refreshing the old login at this moment must not write
        # its result over the new one (it reads the new one once it gets the lock, and keeps it).
        with ctx.secrets.lock(TOKEN_KEY):
            TokenAuth(ctx.secrets, oauth.refresh, key=TOKEN_KEY).store(token)

    # Billit takes exactly client_id, redirect_uri and state: no scope, no PKCE.
    return BillitCodeFlow(oauth, settings.login_base() + LOGON_PATH, {"client_id": oauth.client_id}, keep=keep,
                          environment=settings.environment)


@dataclass
class BillitCodeFlow(CodeFlow):
    """Billit's code flow, refusing up front a redirect URI Billit support would never register,
    rather than sending the person to a logon page that can only show an error."""

    environment: str = "production"

    def begin(self, redirect_uri: str) -> AuthStart:
        check_redirect(self.environment, redirect_uri)
        return super().begin(redirect_uri)


def check_redirect(environment: str, redirect_uri: str) -> None:
    """Billit's rules for a redirect URI (API notes §2b): no query parameters of our own (they
    belong in ``state``), and no localhost in production."""
    split = urllib.parse.urlsplit(redirect_uri.strip())
    if split.query:
        raise ConfigError(f"Billit allows no query parameters in redirect_uri ({redirect_uri!r}); "
                          "register and set the address without them")
    if environment == "production" and _local(split.hostname or ""):
        raise ConfigError(f"Billit registers no localhost redirect URI in production ({redirect_uri!r}); "
                          "register an https page you control with Billit support and set it as "
                          "`redirect_uri` (see the Billit README)")


def _local(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def login_with_browser(ctx: Context, settings: BillitSettings) -> None:
    """The authorization-code flow: Billit's logon page, the redirect, the code exchange."""
    client_secret(ctx)
    code_flow(ctx, settings).in_browser(ctx.ui, redirect_uri=settings.redirect_uri,
                                        no_browser=bool(ctx.options.get("no_browser")))
