"""Logging in to Google: a user's OAuth2 consent (code + PKCE), or a service account's signed JWT.

Both end as a ``TokenAuth`` over the account's secrets, so core refreshes tokens early and on
401. For a user the refresh uses the stored refresh token (Google does not rotate it, so a
refresh may be resent like a read); for a service account "refresh" means signing a fresh JWT
bearer assertion (RFC 7523) — there is no refresh token.

The redirect URI is the ``redirect_uri`` setting: a Desktop-app client takes a loopback URI on
any port (the default, ``http://127.0.0.1/``, listens on a free one); a Web-application client
needs one registered exactly, and any non-loopback one means the user pastes the address the
browser lands on (core's ``authorize_in_browser``). A dead login names the relogin command.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from typing import Any

from invoicesync import AuthError, ConfigError, Context
from invoicesync.http import (
    CodeFlow,
    HttpClient,
    OAuth2Client,
    TokenAuth,
    TokenSet,
    relogin_command,
    secret_for_login,
)

from .settings import SECRET_CLIENT_SECRET, SECRET_SERVICE_ACCOUNT_KEY, SECRET_TOKEN, GDriveSettings

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def oauth_http(ctx: Context) -> HttpClient:
    return ctx.http("", service="gdrive-oauth")


def user_client(ctx: Context, settings: GDriveSettings, http: HttpClient) -> OAuth2Client:
    if not settings.client_id:
        raise ConfigError("auth_mode \"user\" needs client_id (an OAuth client of type Desktop app)")
    return OAuth2Client(http, token_url=settings.token_url, client_id=settings.client_id,
                        client_secret=ctx.secrets.get(SECRET_CLIENT_SECRET) or None,
                        relogin=relogin_command(ctx.account))


def build_auth(ctx: Context, settings: GDriveSettings) -> TokenAuth:
    """The authenticator for Drive calls, from what ``connect`` stored."""
    settings.check_mode()
    http = oauth_http(ctx)
    if settings.auth_mode == "service_account":
        key = load_service_account_key(ctx, settings)
        auth = TokenAuth(ctx.secrets, lambda _old: service_account_token(http, settings, key), key=SECRET_TOKEN)
        if not ctx.secrets.get(SECRET_TOKEN):
            auth.store(service_account_token(http, settings, key))
        return auth
    return TokenAuth(ctx.secrets, user_client(ctx, settings, http).refresh, key=SECRET_TOKEN,
                     relogin=relogin_command(ctx.account))


def code_flow(ctx: Context, settings: GDriveSettings) -> CodeFlow:
    """Google's consent page and code exchange (PKCE), for the terminal and the dashboard alike."""
    oauth = user_client(ctx, settings, oauth_http(ctx))

    def keep(token: TokenSet) -> None:
        if not token.refresh_token:
            raise AuthError("Google returned no refresh token; remove invoicesync's access at "
                            "myaccount.google.com/permissions and connect again")
        TokenAuth(ctx.secrets, oauth.refresh, key=SECRET_TOKEN).store(token)

    return CodeFlow(oauth, settings.authorize_url, {
        "client_id": settings.client_id, "response_type": "code", "scope": settings.scope,
        # offline + consent: Google only returns a refresh token when both are asked for.
        "access_type": "offline", "prompt": "consent", "include_granted_scopes": "true"}, pkce=True, keep=keep)


def client_secret(ctx: Context) -> None:
    # Typed or from the environment, it is stored: every later refresh needs it.
    secret_for_login(ctx, SECRET_CLIENT_SECRET, "OAuth client secret of your Google Desktop-app client "
                     "(empty if none)", optional=True)


def connect_user(ctx: Context, settings: GDriveSettings) -> None:
    """The browser step (or pasted URL with --no-browser), then the code exchange; the token set
    (with its refresh token) goes into the secret store."""
    client_secret(ctx)
    code_flow(ctx, settings).in_browser(ctx.ui, redirect_uri=settings.redirect_uri,
                                        no_browser=bool(ctx.options.get("no_browser")))


def connect_service_account(ctx: Context, settings: GDriveSettings) -> None:
    settings.check_mode()
    key = load_service_account_key(ctx, settings)
    token = service_account_token(oauth_http(ctx), settings, key)
    ctx.secrets.set(SECRET_TOKEN, token.model_dump_json())


def load_service_account_key(ctx: Context, settings: GDriveSettings) -> dict[str, Any]:
    """The JSON key: from the ``service_account_key`` secret, else ``service_account_key_file``."""
    raw = ctx.secrets.get(SECRET_SERVICE_ACCOUNT_KEY)
    where = "the service_account_key secret"
    if not raw:
        if settings.service_account_key_file is None:
            raise ConfigError("auth_mode \"service_account\" needs service_account_key_file (the JSON key "
                              "downloaded from the Google Cloud console) or the service_account_key secret")
        path = settings.service_account_key_file.expanduser()
        where = str(path)
        try:
            raw = path.read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read the service-account key {path}: {exc.strerror or exc}") from None
    try:
        key = json.loads(raw)
    except ValueError:
        raise ConfigError(f"{where} is not JSON; download the key again as JSON") from None
    if not isinstance(key, dict) or key.get("type") != "service_account":
        raise ConfigError(f"{where} is not a service-account key (its \"type\" must be \"service_account\")")
    for field in ("client_email", "private_key"):
        if not key.get(field):
            raise ConfigError(f"{where} has no {field}")
    return key


def service_account_token(http: HttpClient, settings: GDriveSettings, key: dict[str, Any]) -> TokenSet:
    """Exchange a fresh RS256-signed assertion for an access token (one hour)."""
    now = int(time.time())
    claims = {"iss": key["client_email"], "scope": settings.scope, "aud": settings.token_url,
              "iat": now, "exp": now + 3600}
    headers = {"kid": key["private_key_id"]} if key.get("private_key_id") else None
    import jwt  # here, not at the top: only a service account signs, and importing it costs a run's start

    try:
        assertion = jwt.encode(claims, key["private_key"], algorithm="RS256", headers=headers)
    except (ValueError, TypeError, jwt.PyJWTError) as exc:
        raise ConfigError(f"the service-account private key cannot sign: {type(exc).__name__}") from None
    # Minting an access token changes nothing on the server, so a resend is harmless.
    response = http.request(
        "POST", settings.token_url, content=urllib.parse.urlencode({"grant_type": JWT_BEARER, "assertion": assertion}),
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
        idempotent=True, check=False,
    )
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not response.is_success or not isinstance(body, dict):
        reason = (body.get("error_description") or body.get("error")) if isinstance(body, dict) else None
        raise AuthError(f"gdrive: the token endpoint refused the service account ({reason or response.status_code})")
    return TokenSet.from_response(body)
