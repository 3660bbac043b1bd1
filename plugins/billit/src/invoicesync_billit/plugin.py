"""The invoicesync hooks for Billit. Thin: the protocol lives in ``client``, ``listing``,
``documents``; the emulator in ``sandbox``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from invoicesync import (
    Account,
    AuthError,
    AuthStart,
    Checkpoint,
    Company,
    Context,
    Deletion,
    Document,
    DocumentRef,
    ListingError,
    PluginInfo,
    PluginKind,
    RemoteError,
    WebhookEvent,
    WebhookSubscription,
    hookimpl,
)
from invoicesync.http import keep_or_login, relogin_hint, wants_relogin

from . import auth as _auth
from . import webhooks as _webhooks
from .client import BillitClient
from .documents import fetch_order
from .listing import OrderLister, as_int_id
from .settings import DEFAULT_MAX_IN_FLIGHT, SECRETS, BillitSettings

if TYPE_CHECKING:
    from .sandbox import BillitSandbox

def client_for(ctx: Context) -> BillitClient:
    """One client per run of an account, shared by the worker threads (and so one token refresher)."""
    return ctx.resource("billit.client", lambda: BillitClient(ctx, ctx.settings_as(BillitSettings)))


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(
        api_version=(1, 4),  # the invoicesync plugin API this was written for (3: webhooks)
        kind=PluginKind.SOURCE,
        title="Billit",
        description="Sales and purchase invoices and credit notes from Billit (billit.be), "
                    "with their PDF and Peppol UBL",
        settings=BillitSettings,
        secrets=SECRETS,
        # Billit publishes no limit; 8 requests in flight per login is what public clients run
        # without 429s (``max_in_flight``, the budget's cap). Twice as many orders are fetched at
        # once: a fetch holds a request slot only while a request is out, and between its
        # requests it waits (for the PDF downloading beside the detail, for its blobs' fsync) and
        # parses; with only eight, Billit averaged ~4-6 of the 8 in flight at 25 ms (timeline.py),
        # with sixteen the extra fetches wait on the budget and take each slot as it frees.
        concurrency=2 * DEFAULT_MAX_IN_FLIGHT,
        max_in_flight=DEFAULT_MAX_IN_FLIGHT,
    )


@hookimpl
def auth(account: Account, ctx: Context) -> list[Company]:
    settings = ctx.settings_as(BillitSettings)
    if settings.auth == "api_key":
        # --relogin asks for a new key: the stored one is the key that stopped working.
        fresh = wants_relogin(ctx.options) and ctx.ui.interactive
        api_key = (None if fresh else ctx.secrets.get("api_key")) or ctx.ui.prompt(
            "Billit API key (MyBillit > My profile > Users & API key)", secret=True).strip()
        if not api_key:
            raise AuthError("no Billit API key given")
        info = account_information(ctx, settings, api_key)
        ctx.secrets.set("api_key", api_key)  # kept only once Billit accepted it
    else:
        _auth.client_secret(ctx)
        # A stored login that works is kept (scripts, the demo); --relogin or a dead one logs in.
        info = keep_or_login(ctx, service="Billit", token_key=_auth.TOKEN_KEY,
                             login=lambda: _auth.login_with_browser(ctx, settings),
                             verify=lambda: account_information(ctx, settings))
    return companies_of(info, ctx)


@hookimpl
def auth_begin(account: Account, ctx: Context, redirect_uri: str) -> AuthStart | None:
    """The dashboard's login: Billit's logon page, back to the server's callback (an API key needs none)."""
    settings = ctx.settings_as(BillitSettings)
    if settings.auth == "api_key":
        return None
    _auth.client_secret(ctx)
    return _auth.code_flow(ctx, settings).begin(redirect_uri)


@hookimpl
def auth_complete(account: Account, ctx: Context, callback_url: str, started: AuthStart) -> list[Company]:
    settings = ctx.settings_as(BillitSettings)
    _auth.code_flow(ctx, settings).complete(callback_url, started)
    return companies_of(account_information(ctx, settings), ctx)


def account_information(ctx: Context, settings: BillitSettings, api_key: str | None = None) -> dict[str, Any]:
    """``GET /v1/account/accountInformation``: proves the login and lists its companies."""
    client = BillitClient(ctx, settings, api_key=api_key)
    try:
        return client.account_information()
    except RemoteError as exc:
        if exc.status in (400, 401, 403):
            raise AuthError(f"Billit refused the login: {exc}") from None
        raise


def companies_of(info: dict[str, Any], ctx: Context) -> list[Company]:
    companies = []
    for entry in info.get("Companies") or []:
        # PartyID is an int32 in the Swagger; a string of digits is read too.
        party_id = as_int_id(entry.get("PartyID")) if isinstance(entry, dict) else None
        if party_id is None:
            continue
        name = entry.get("Name") or entry.get("CommercialName") or entry.get("TabNameAlias") \
            or f"PartyID {party_id}"
        if entry.get("APIAllowed") is False:
            ctx.ui.echo(f"Note: Billit reports API access as disabled for {name} (PartyID {party_id}).")
        vat = entry.get("VATNumber")
        companies.append(Company(id=str(party_id), name=str(name),
                                 vat_number=vat if isinstance(vat, str) and vat else None))
    if not companies:
        raise AuthError("this Billit login reaches no company (accountInformation lists none)")
    return companies


@hookimpl
def list_documents(account: Account, company: Company, cursor: str | None,
                   ctx: Context) -> Iterator[DocumentRef | Deletion | ListingError | Checkpoint]:
    lister = OrderLister(client_for(ctx), ctx.settings_as(BillitSettings), company.id, ctx.log)
    # Marked before listing: a run that dies before its first checkpoint lists deletions next time
    # (one request too many, never one deletion too few). ``--full`` also comes without a cursor, but
    # after the mark: orders it imported before may have been deleted since, so they are listed.
    listed_key = f"listed:{company.id}"
    first_sync = cursor is None and not ctx.kv.get(listed_key)
    if first_sync:
        ctx.kv.set(listed_key, True)
    try:
        yield from lister.changes(cursor, first_sync=first_sync)
    except RemoteError as exc:
        if exc.status in (401, 403):
            fix = "" if exc.status == 401 else f", or {relogin_hint(account)}"  # a 401 names it already
            raise AuthError(f"Billit company {company.name} (PartyID {company.id}) can no longer be reached "
                            f"with the login of account {account.name!r}: {exc}. Check the company's access "
                            f"in Billit{fix}") from None
        raise


@hookimpl
def fetch_document(account: Account, company: Company, ref: DocumentRef, ctx: Context) -> Document:
    return fetch_order(client_for(ctx), account, company, ref, ctx.blobs, ctx.log, submit=ctx.submit)


@hookimpl
def webhook_subscribe(account: Account, company: Company, ctx: Context, url: str) -> WebhookSubscription:
    return _webhooks.subscribe(BillitClient(ctx, ctx.settings_as(BillitSettings)), company, url)


@hookimpl
def webhook_unsubscribe(account: Account, company: Company, ctx: Context, subscription: WebhookSubscription) -> None:
    _webhooks.unsubscribe(BillitClient(ctx, ctx.settings_as(BillitSettings)), company, subscription.ids)


@hookimpl
def webhook_verify(headers: dict[str, str], body: bytes, secrets: list[str]) -> WebhookEvent:
    return _webhooks.verify(headers, body, secrets)


@hookimpl
def sandbox(options: dict[str, Any]) -> BillitSandbox:
    from .sandbox import BillitSandbox  # the emulator is only loaded when asked for

    return BillitSandbox.from_options(options)
