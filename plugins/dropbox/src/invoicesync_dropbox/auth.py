"""Logging in to Dropbox: OAuth 2 authorization code with PKCE (S256) and offline access.

PKCE means no app secret is needed, so invoicesync can ship as a public client. The token set
(short-lived ``sl.`` access token plus the long-lived refresh token) is stored as one secret;
the core ``TokenAuth`` refreshes it before it expires and whenever Dropbox answers
``expired_access_token``. Dropbox does not rotate refresh tokens, and ``TokenSet`` keeps the old
one when the refresh answer carries none.

A stored login that still works is reused rather than asked for again: ``invoicesync demo`` and
scripts store the token set first and connect without a person. The browser runs when there is no
stored login, when the stored one no longer works (and someone is there to log in), or when the
user asks for it with ``invoicesync connect dropbox --name NAME --relogin`` (core's
``keep_or_login``). The redirect URI is the ``redirect_uri`` setting, which must match one
registered in the app console exactly; core's ``authorize_in_browser`` listens on a loopback one
or has the user paste the address of any other.
"""

from __future__ import annotations

from invoicesync import AuthError, ConfigError, Context
from invoicesync.http import (
    CodeFlow,
    OAuth2Client,
    TokenAuth,
    TokenSet,
    keep_or_login,
    relogin_command,
)
from pydantic import ValidationError

from .client import DropboxClient
from .index import FolderCheck, check_folder, index_root
from .settings import DropboxSettings

TOKEN_KEY = "oauth_token"


def oauth_client(ctx: Context, settings: DropboxSettings) -> OAuth2Client:
    if not settings.app_key:
        raise ConfigError("the Dropbox account needs an app_key setting (the App key of your Dropbox app)")
    http = ctx.http("", service="dropbox-oauth")
    # Dropbox does not rotate refresh tokens: a refresh may be resent like a read.
    return OAuth2Client(http, token_url=settings.token_url, client_id=settings.app_key,
                        relogin=relogin_command(ctx.account))


def token_auth(ctx: Context, settings: DropboxSettings) -> TokenAuth:
    """The authenticator for API calls; it refreshes through the token endpoint when needed."""
    oauth = oauth_client(ctx, settings)
    return TokenAuth(ctx.secrets, oauth.refresh, key=TOKEN_KEY, relogin=relogin_command(ctx.account))


def login(ctx: Context, settings: DropboxSettings) -> FolderCheck | None:
    """Make sure the account has a working login: the stored one if it works, else the browser.
    Returns what ``verify`` saw of the target folder."""

    def check() -> FolderCheck | None:
        stored = ctx.secrets.get(TOKEN_KEY)
        if stored:
            _check_scopes(_parse(stored), settings)
        return verify(ctx, settings)

    return keep_or_login(ctx, service="Dropbox", token_key=TOKEN_KEY, login=lambda: _login(ctx, settings),
                         verify=check)


def _login(ctx: Context, settings: DropboxSettings) -> None:
    connect(ctx, settings)


def verify(ctx: Context, settings: DropboxSettings) -> FolderCheck | None:
    """Prove the login works for the calls a sync makes (``list_folder`` and ``get_metadata`` need
    ``files.metadata.read``; an expired access token is refreshed on the way) with the one request
    that also tells whether the template's fixed folder holds files (``index.check_folder``: a
    first sync into a folder that holds none need not list it). ``None`` when the template has no
    fixed folder: then a ``get_metadata`` proves the login."""
    client = DropboxClient(ctx, settings, token_auth(ctx, settings))
    root = index_root(settings.template)
    if root is None:
        client.get_metadata(settings.template.split("{", 1)[0].rstrip("/") or "/Invoices")
        return None
    return check_folder(ctx, client, root)


def _parse(stored: str) -> TokenSet:
    try:
        return TokenSet.model_validate_json(stored)
    except ValidationError as exc:
        raise AuthError("the stored Dropbox token set is unreadable") from exc


def _check_scopes(token: TokenSet, settings: DropboxSettings) -> None:
    granted = set((token.scope or settings.scopes).split())
    missing = set(settings.scopes.split()) - granted
    if missing:
        raise AuthError(f"Dropbox did not grant the scopes {', '.join(sorted(missing))}; "
                        "enable them in the app's Permissions tab and connect again")


def code_flow(ctx: Context, settings: DropboxSettings) -> CodeFlow:
    """Dropbox's consent page and code exchange, for the terminal and the dashboard alike: PKCE,
    offline access (syncs run unattended), and the token set kept only with the scopes a sync needs."""
    oauth = oauth_client(ctx, settings)

    def keep(token: TokenSet) -> None:
        if not token.refresh_token:
            raise AuthError("Dropbox returned no refresh token; the app must allow offline access")
        _check_scopes(token, settings)
        ctx.secrets.set(TOKEN_KEY, token.model_dump_json())

    return CodeFlow(oauth, settings.authorize_url, {
        "client_id": settings.app_key, "response_type": "code", "token_access_type": "offline",
        "scope": settings.scopes}, pkce=True, keep=keep)


def connect(ctx: Context, settings: DropboxSettings) -> TokenSet:
    """Run the browser login and store the token set. Returns it (the caller must not print it)."""
    return code_flow(ctx, settings).in_browser(ctx.ui, redirect_uri=settings.redirect_uri,
                                               no_browser=bool(ctx.options.get("no_browser")))
