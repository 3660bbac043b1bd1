"""The invoicesync hooks of the Dropbox target. Thin: the work lives in the modules beside it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from invoicesync import Account, AuthStart, Company, Context, Delivery, PluginInfo, PluginKind, PushRequest, hookimpl

from . import auth as _auth
from .auth import TOKEN_KEY
from .settings import DropboxSettings
from .stream import push_stream

if TYPE_CHECKING:  # the emulator (and http.server) loads only when a sandbox is asked for
    from invoicesync.sandbox import SandboxApp

#: The push is one stream per account (``streaming`` below); the core queues up to twice this many
#: documents ahead of it while the import runs.
BATCH_SIZE = 50


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(
        api_version=(1, 4),  # the invoicesync plugin API this was written for
        kind=PluginKind.TARGET,
        title="Dropbox",
        description="Uploads each invoice's PDF and UBL into a Dropbox folder tree, exactly once",
        settings=DropboxSettings,
        secrets=(TOKEN_KEY,),
        batch_size=BATCH_SIZE,
        # API 4: documents arrive as a stream; uploads start at once and commits gather up to
        # 1,000 files (stream.py). It is the only push path: a list is a stream already complete.
        streaming=True,
        # Uploading bytes takes no lock: eight sessions in flight per token (commits stay one at a time).
        max_in_flight=8,
    )


@hookimpl
def auth(account: Account, ctx: Context) -> list[Company]:
    settings = ctx.settings_as(DropboxSettings)
    folder = _auth.login(ctx, settings)
    ctx.ui.echo("Connected to Dropbox.")
    if folder is not None:
        ctx.ui.echo(folder.message())
    return []


@hookimpl
def auth_begin(account: Account, ctx: Context, redirect_uri: str) -> AuthStart:
    """The dashboard's login: Dropbox's consent page, back to the server's callback."""
    return _auth.code_flow(ctx, ctx.settings_as(DropboxSettings)).begin(redirect_uri)


@hookimpl
def auth_complete(account: Account, ctx: Context, callback_url: str, started: AuthStart) -> list[Company]:
    settings = ctx.settings_as(DropboxSettings)
    _auth.code_flow(ctx, settings).complete(callback_url, started)
    folder = _auth.verify(ctx, settings)
    if folder is not None:
        ctx.ui.echo(folder.message())
    return []


@hookimpl
def push_documents(account: Account, requests: Iterable[PushRequest], ctx: Context) -> Iterator[Delivery]:
    # A list (a direct call) is a stream whose input has already ended: the same code, and the
    # commit goes as soon as its uploads are done.
    return push_stream(requests, ctx)


@hookimpl
def sandbox(options: dict[str, Any]) -> SandboxApp:
    from .sandbox import DropboxSandbox

    return DropboxSandbox.from_options(options)
