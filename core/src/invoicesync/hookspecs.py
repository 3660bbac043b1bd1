"""Hook specifications: the public contract between invoicesync and its plugins.

A plugin is a module (or object) with functions marked ``@hookimpl``, registered through one
entry-point line in ``invoicesync.sources`` or ``invoicesync.targets``. An implementation may
accept any subset of a hook's arguments (pluggy matches them by name), so new arguments never
break old plugins.

Routing: every hook here except ``register_commands`` is *routed* — the runner calls it on the
one plugin the account names, never on every installed plugin (see ``invoicesync.plugins``).
Each routed hook is ``firstresult``, so its return value is the plugin's own, not a list.

The hooks are grouped by the life of a sync: describe, connect, import, listen, export, develop.
Every hook is documented, with an example, in ``docs/hooks.md``; a test keeps the two in step.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from .context import Context, PluginInfo
    from .models import (
        Account,
        AuthStart,
        Checkpoint,
        Company,
        Deletion,
        Delivery,
        Document,
        DocumentRef,
        PushRequest,
        WebhookEvent,
        WebhookSubscription,
    )
    from .sandbox import SandboxApp

hookspec = pluggy.HookspecMarker("invoicesync")
hookimpl = pluggy.HookimplMarker("invoicesync")

#: The version of this contract. Plugins declare the range they support in ``PluginInfo``.
#: 2 added ``ListingError`` (list_documents), ``PushRequest.files`` and deletions handed to targets
#: (push_documents), ``DeliveryStatus.DELETED``, and the optional two-request login
#: ``auth_begin``/``auth_complete`` (a plugin without them is connected with ``auth`` only: from
#: the terminal, the dashboard showing the ``invoicesync connect`` command instead).
#: 3 added the optional webhook hooks ``webhook_subscribe``/``webhook_unsubscribe``/
#: ``webhook_verify`` (a source without them is synced on demand and on schedule only).
#: 4 added streaming pushes: a target whose ``PluginInfo.streaming`` is set gets ``requests`` as a
#: lazy iterable fed while the import runs (push_documents); other targets keep getting lists.
API_VERSION = 4
#: The oldest contract this core still drives. A plugin written for 1 keeps working: it is never
#: handed a deleted document (core records ``skipped`` for it) and may ignore ``PushRequest.files``.
MIN_API_VERSION = 1

# --- describe ---------------------------------------------------------------------------------


@hookspec(firstresult=True)
def plugin_info() -> PluginInfo:
    """Describe the plugin: its kind (source or target), the core API versions it supports,
    its settings model (base URLs included) and which settings are secrets.

    Called once at load time; a plugin whose ``api_version`` range excludes
    ``invoicesync.API_VERSION`` is refused with a clear message.
    """


# --- connect ----------------------------------------------------------------------------------


@hookspec(firstresult=True)
def auth(account: Account, ctx: Context) -> list[Company]:
    """Log in for ``account`` and return the companies that login can reach.

    Interactive steps (open a browser, paste a URL, type an API key) go through ``ctx.ui``;
    credentials are stored with ``ctx.secrets`` and never returned, printed or logged.
    Raise ``AuthError`` with a message that says what to fix.
    """


@hookspec(firstresult=True)
def auth_begin(account: Account, ctx: Context, redirect_uri: str) -> AuthStart | None:
    """Start a login that a web server finishes in a later request (``auth_complete``).

    Return an ``AuthStart``: the service's login URL carrying exactly ``redirect_uri`` (the
    server's own callback, as registered with the service) and a fresh ``state``, plus anything
    the second half needs (a PKCE verifier). Store no login yet. Return ``None`` when this
    account's login does not go through the service's page (an API key, a service account): the
    caller connects it with ``auth``. Core's ``invoicesync.http.CodeFlow.begin`` builds it.
    Optional: without it the dashboard sends the user to ``invoicesync connect``.
    """


@hookspec(firstresult=True)
def auth_complete(account: Account, ctx: Context, callback_url: str, started: AuthStart) -> list[Company]:
    """Finish the login ``auth_begin`` started: ``callback_url`` is the full address the service
    sent the browser back to, ``started`` what ``auth_begin`` returned (the caller has matched
    their ``state``). Check the answer and trade its code (``CodeFlow.complete``), store the login
    with ``ctx.secrets``, and return the companies it reaches, as ``auth`` does.
    """


# --- import -----------------------------------------------------------------------------------


@hookspec(firstresult=True)
def list_documents(
    account: Account, company: Company, cursor: str | None, ctx: Context
) -> Iterable[DocumentRef | Deletion | Checkpoint]:
    """Yield what changed in ``company`` since ``cursor`` (``None``: everything).

    Yield a ``DocumentRef`` per new or changed document, a ``Deletion`` per deleted one, and
    now and then a ``Checkpoint(cursor)`` that covers everything yielded before it. Items must
    come in cursor order. The runner fetches refs concurrently and stores a checkpoint's cursor
    only once every item before it is safely stored. Re-yielding an item that shares the
    boundary of ``cursor`` is fine: the library deduplicates by id and version.
    """


@hookspec(firstresult=True)
def fetch_document(account: Account, company: Company, ref: DocumentRef, ctx: Context) -> Document:
    """Fetch one document in full: its metadata and files.

    Stream each file into ``ctx.blobs`` (``ctx.blobs.write(chunks)``) and list the returned
    ``FileRef``s in ``Document.files``. Called concurrently from worker threads.
    Raise ``DocumentError(document=…, field=…)`` for a malformed payload: only that document
    fails, and it is retried on the next run.
    """


# --- listen (optional, API 3) -----------------------------------------------------------------


@hookspec(firstresult=True)
def webhook_subscribe(account: Account, company: Company, ctx: Context, url: str) -> WebhookSubscription:
    """Ask the service to call ``url`` (an ``https://`` address of ``invoicesync serve``) whenever a
    document of ``company`` is created or changed. Return the ids of what was registered and the
    signing secrets the service gave: core keeps the ids in its state and the secrets in the secret
    store. Raise ``RemoteError``/``AuthError`` when the service refuses. Optional: a source without
    the webhook hooks is synced by "Sync now" and schedules only.
    """


@hookspec(firstresult=True)
def webhook_unsubscribe(account: Account, company: Company, ctx: Context, subscription: WebhookSubscription) -> None:
    """Remove what ``webhook_subscribe`` registered (``subscription`` is what it returned, its
    secrets included). Called on disconnect and before a subscription is replaced. A hook the
    service no longer knows is not an error.
    """


@hookspec(firstresult=True)
def webhook_verify(account: Account, company: Company, ctx: Context, headers: dict[str, str], body: bytes,
                   secrets: list[str]) -> WebhookEvent:
    """Check one delivery to ``company``'s webhook address: ``headers`` (lower-case names) and the
    raw ``body`` exactly as received, ``secrets`` the company's signing secrets. Return a
    ``WebhookEvent`` (when it was signed, a key unique to the delivery, the documents it names) or
    raise ``WebhookRefused`` saying why. Core then refuses a stale or replayed one and syncs the
    company soon after. Make no request to the service here: it runs for every delivery.
    """


# --- export -----------------------------------------------------------------------------------


@hookspec(firstresult=True)
def push_documents(account: Account, requests: Iterable[PushRequest], ctx: Context) -> Iterable[Delivery]:
    """Deliver a batch of documents to the target, exactly once, and yield one ``Delivery`` each.

    Read file content with ``ctx.blobs.open(sha256)``; never load a large file whole.
    ``request.previous`` is the ledger's last record for that document here (``None`` if never
    delivered; status ``pending`` if an earlier run may have crashed mid-write). Before writing,
    look the document up on the target, so a retry, crash or unknown outcome never duplicates.
    When ``ctx.dry_run`` is set, write nothing and yield ``planned`` deliveries with the path.
    A per-document problem becomes a ``failed`` delivery; raising fails the whole batch. A
    transient one may set ``retry_after`` (seconds): the runner retries it in the same run.

    API 2: ``request.files`` are exactly the files this target should hold (the account's export
    options already applied; documents they exclude never arrive): write every one and only them,
    writing only what is missing when a settled document is offered again after an option changed.
    ``request.document.deleted``: apply the account's ``on_delete`` policy and yield ``deleted``,
    ``skipped`` (kept, with the reason) or ``failed``. See docs/hooks.md for the full contract.

    API 4: a plugin whose ``PluginInfo.streaming`` is set gets ``requests`` as a lazy iterable instead
    of a list: it yields each document as the import brings it and ends when the run has nothing
    more. Pull it from one thread, start each document's work as it comes, and yield each delivery
    as soon as that document is settled (in any order): the ledger records a document delivered only
    when its delivery arrives, so yield it only once the write is confirmed. One such call runs per
    account at a time.
    """


# --- develop and extend -----------------------------------------------------------------------


@hookspec(firstresult=True)
def sandbox(options: dict[str, Any]) -> SandboxApp:
    """Return a local emulator of the plugin's service, for tests and ``invoicesync demo``.

    ``options`` carries ``seed``, ``documents`` (how many to seed) and plugin-specific keys.
    Build it with ``invoicesync.sandbox`` so it gets fault injection and the admin API.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Deprecated in API 2: declare commands in the ``invoicesync.commands`` entry-point group.

    Add commands to the ``invoicesync`` CLI. Called on every plugin (not routed), and only when the
    command typed is not a core or entry-point command: drawing the CLI imports no plugin, so the
    commands added here are not listed in ``invoicesync --help``.
    """
