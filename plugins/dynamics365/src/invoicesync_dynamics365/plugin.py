"""Hook implementations of the ``dynamics365`` target (thin: the work is in the other modules)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from invoicesync import (
    Account,
    AuthError,
    Company,
    ConfigError,
    Context,
    Delivery,
    PluginInfo,
    PluginKind,
    PushRequest,
    RemoteError,
    hookimpl,
)

from .client import BusinessCentral, NotFoundError
from .export import Exporter
from .settings import SECRET_KEY, Dynamics365Settings


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(
        api_version=(1, 4),  # the invoicesync plugin API this was written for
        kind=PluginKind.TARGET,
        title="Dynamics 365 Business Central",
        description="Draft purchase invoices and credit memos with the PDF attached (never posted)",
        settings=Dynamics365Settings,
        secrets=(SECRET_KEY,),
        batch_size=10,
        # BC online serves 5 requests at once per user and queues the rest; stay well inside.
        concurrency=2,
        # Documented service limit: 6,000 requests per service principal per 5-minute window.
        budget_requests=6000,
        budget_period=300.0,
    )


def client_secret(ctx: Context, *, ask: bool) -> str:
    secret = ctx.secrets.get(SECRET_KEY)
    if secret:
        return secret
    if not ask:
        raise AuthError("no client secret stored for this account; run `invoicesync connect` again")
    secret = ctx.ui.prompt("Client secret of the Entra app registration (the secret's value)", secret=True).strip()
    if not secret:
        raise AuthError("a client secret is needed for Business Central")
    return secret


@hookimpl
def auth(account: Account, ctx: Context) -> list[Company]:
    settings = ctx.settings_as(Dynamics365Settings)
    secret = client_secret(ctx, ask=True)
    bc = BusinessCentral.for_context(ctx, secret)
    ctx.ui.echo(f"Business Central environment: {settings.environment} (tenant {settings.tenant})")
    try:
        companies = [_company(c) for c in bc.companies()]
    except NotFoundError as exc:
        raise ConfigError(f"Business Central has no environment {settings.environment!r} in tenant "
                          f"{settings.tenant!r}; check the `environment` setting ({exc})") from None
    except RemoteError as exc:
        raise AuthError(f"could not list the Business Central companies: {exc}") from None
    finally:
        bc.close()
    # Only a login that worked is worth keeping.
    ctx.secrets.set(SECRET_KEY, secret)
    if not companies:
        raise ConfigError(f"environment {settings.environment!r} has no company this app can see")
    wanted = ctx.options.get("company") or settings.company_id
    if wanted:
        return [_choose(companies, str(wanted), settings.environment)]
    return companies


def _choose(companies: list[Company], wanted: str, environment: str) -> Company:
    """A company by id (any case: a GUID), else by name; two of that name are an error, never a guess."""
    by_id = [c for c in companies if c.id.lower() == wanted.strip().lower()]
    by_name = by_id or [c for c in companies if c.name == wanted] \
        or [c for c in companies if c.name.strip().casefold() == wanted.strip().casefold()]
    if len(by_name) == 1:
        return by_name[0]
    if by_name:
        candidates = ", ".join(f"{c.name} ({c.id})" for c in by_name)
        raise ConfigError(f"more than one company in environment {environment!r} is called {wanted!r}: "
                          f"{candidates}; give its id instead")
    known = ", ".join(f"{c.name} ({c.id})" for c in companies)
    raise ConfigError(f"no company {wanted!r} in environment {environment!r}; companies: {known}")


def _company(raw: dict[str, Any]) -> Company:
    return Company(id=str(raw["id"]), name=str(raw.get("displayName") or raw.get("name") or raw["id"]))


@hookimpl
def push_documents(account: Account, requests: list[PushRequest], ctx: Context) -> Iterator[Delivery]:
    settings = ctx.settings_as(Dynamics365Settings)
    company = settings.company_id or (account.companies[0].id if account.companies else None)
    if not company:
        raise ConfigError(f"account {account.name!r} has no Business Central company; "
                          "run `invoicesync connect` and pick one, or set `company_id`")
    bc = BusinessCentral.for_context(ctx, client_secret(ctx, ask=False))
    try:
        yield from Exporter(bc, company, ctx).push(requests)
    finally:
        bc.close()


@hookimpl
def sandbox(options: dict[str, Any]) -> Any:
    from .sandbox import BusinessCentralSandbox

    return BusinessCentralSandbox.from_options(options)
