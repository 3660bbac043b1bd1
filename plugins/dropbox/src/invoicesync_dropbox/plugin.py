"""The invoicesync hooks of the Dropbox target. Thin: the work lives in the modules beside it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from invoicesync import Account, AuthStart, Company, Context, Delivery, PluginInfo, PluginKind, PushRequest, hookimpl
from invoicesync.sandbox import SandboxApp

from . import auth as _auth
from .auth import TOKEN_KEY
from .export import push
from .settings import DropboxSettings

#: Documents per batch: their small files are committed together by one finish_batch_v2, which
#: takes up to 1,000 entries (Dropbox's advice: as few commits, as full as possible). Each commit
#: is one write on the namespace lock, and one request.
BATCH_SIZE = 1000
#: How long (seconds) a batch waits to fill while the import is still bringing documents: the bound
#: on how long a document waits before its upload starts. Like rclone's ``--dropbox-batch-timeout``
#: for sync: a few seconds. Once the import is done the last, partial batch goes at once. So a
#: run's commits are about its import time / this, plus one, instead of one per 50 files.
BATCH_WAIT = 3.0


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(
        api_version=(1, 3),  # the invoicesync plugin API this was written for
        kind=PluginKind.TARGET,
        title="Dropbox",
        description="Uploads each invoice's PDF and UBL into a Dropbox folder tree, exactly once",
        settings=DropboxSettings,
        secrets=(TOKEN_KEY,),
        batch_size=BATCH_SIZE,
        batch_wait=BATCH_WAIT,
        # One batch at a time: its commit is the one namespace write (commits run one at a time
        # anyway), and a single filler makes full batches rather than two half ones. The bytes of
        # a batch still go up side by side (max_in_flight).
        concurrency=1,
        # Uploading bytes takes no lock: eight sessions in flight per token (commits stay one at a time).
        max_in_flight=8,
    )


@hookimpl
def auth(account: Account, ctx: Context) -> list[Company]:
    settings: DropboxSettings = ctx.settings
    _auth.login(ctx, settings)
    ctx.ui.echo("Connected to Dropbox.")
    return []


@hookimpl
def auth_begin(account: Account, ctx: Context, redirect_uri: str) -> AuthStart:
    """The dashboard's login: Dropbox's consent page, back to the server's callback."""
    return _auth.code_flow(ctx, ctx.settings).begin(redirect_uri)


@hookimpl
def auth_complete(account: Account, ctx: Context, callback_url: str, started: AuthStart) -> list[Company]:
    settings: DropboxSettings = ctx.settings
    _auth.code_flow(ctx, settings).complete(callback_url, started)
    _auth.verify(ctx, settings)
    return []


@hookimpl
def push_documents(account: Account, requests: list[PushRequest], ctx: Context) -> Iterator[Delivery]:
    return push(requests, ctx)


@hookimpl
def sandbox(options: dict[str, Any]) -> SandboxApp:
    from .sandbox import DropboxSandbox

    return DropboxSandbox.from_options(options)
