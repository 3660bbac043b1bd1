"""The ``gdrive`` target: hook implementations only; the work is in the modules they call."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from invoicesync import Account, AuthStart, Company, Context, Delivery, PluginInfo, PluginKind, PushRequest, hookimpl
from invoicesync.http import keep_or_login
from invoicesync.naming import validate_template

from .auth import build_auth, client_secret, code_flow, connect_service_account, connect_user
from .client import DriveClient
from .export import exporter_for
from .folders import FolderTree
from .settings import SECRET_TOKEN, SECRETS, GDriveSettings

if TYPE_CHECKING:  # the emulator is imported only when asked for: a sync never needs it
    from .sandbox import DriveSandbox


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(
        api_version=(1, 4),  # the invoicesync plugin API this was written for
        kind=PluginKind.TARGET,
        title="Google Drive",
        description="Uploads PDFs and UBL XML into a Google Drive folder tree (My Drive or a shared drive)",
        settings=GDriveSettings,
        secrets=SECRETS,
        batch_size=8,
        concurrency=4,
    )


@hookimpl
def auth(account: Account, ctx: Context) -> list[Company]:
    """Log in (browser consent or service account), then find or create the root folder."""
    settings = ctx.settings_as(GDriveSettings)
    validate_template(settings.template)
    settings.check_mode()
    if settings.auth_mode == "service_account":
        connect_service_account(ctx, settings)
        _root_folder(account, ctx, settings)
    else:
        # A stored login that works is kept (scripts, the demo); --relogin or a dead one logs in.
        keep_or_login(ctx, service="Google", token_key=SECRET_TOKEN, login=lambda: connect_user(ctx, settings),
                      verify=lambda: _root_folder(account, ctx, settings))
    return []


@hookimpl
def auth_begin(account: Account, ctx: Context, redirect_uri: str) -> AuthStart | None:
    """The dashboard's login: Google's consent page, back to the server's callback (a service
    account needs no page: ``auth`` connects it)."""
    settings = ctx.settings_as(GDriveSettings)
    validate_template(settings.template)
    settings.check_mode()
    if settings.auth_mode == "service_account":
        return None
    client_secret(ctx)
    return code_flow(ctx, settings).begin(redirect_uri)


@hookimpl
def auth_complete(account: Account, ctx: Context, callback_url: str, started: AuthStart) -> list[Company]:
    settings = ctx.settings_as(GDriveSettings)
    code_flow(ctx, settings).complete(callback_url, started)
    _root_folder(account, ctx, settings)
    return []


def _root_folder(account: Account, ctx: Context, settings: GDriveSettings) -> None:
    """Proves the login works: finds or creates the root folder."""
    if not ctx.dry_run:
        client = DriveClient(ctx, settings, build_auth(ctx, settings))
        root = FolderTree(client, ctx.kv, account.name).root(refresh=True)
        ctx.ui.echo(f"Documents will be written under Drive folder {root}.")


@hookimpl
def push_documents(account: Account, requests: list[PushRequest], ctx: Context) -> Iterator[Delivery]:
    yield from exporter_for(ctx).push(requests)


@hookimpl
def sandbox(options: dict[str, Any]) -> DriveSandbox:
    from .sandbox import DriveSandbox

    return DriveSandbox(options)
