"""Connecting and disconnecting accounts: the "Sync → add an account → log in → choose companies" flow."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .context import UI, NonInteractiveUI, PluginKind
from .errors import ConfigError, PluginError
from .http import wants_relogin
from .models import Account, AccountDirection, Company
from .plugins import Plugins
from .sandbox import RunningSandbox
from .workspace import Workspace


def connect(
    workspace: Workspace,
    plugin_name: str,
    *,
    ui: UI,
    name: str | None = None,
    settings: dict[str, Any] | None = None,
    companies: Sequence[str] = (),
    options: dict[str, Any] | None = None,
    choose_again: bool = False,
    login: Callable[[Account], Sequence[Company]] | None = None,
) -> Account:
    """Add (or re-connect) an account: validate settings, run the plugin's ``auth``, choose companies.

    ``login`` replaces the ``auth`` call: the dashboard has already logged in with
    ``auth_begin``/``auth_complete`` and passes the companies that login reached.

    A re-connect (e.g. ``--relogin``) keeps the companies chosen before; ``companies`` or
    ``choose_again`` (the checklist) replace them. An account declared in ``invoicesync.toml`` is
    only logged in: its login goes to its secrets, its settings and companies stay in the file."""
    plugin = workspace.plugins.get(plugin_name)
    name = name or plugin_name
    declared = next((a for a in workspace.accounts() if a.name == name and a.origin == "config"), None)
    if declared is not None:
        return _log_in_declared(workspace, declared, plugin_name, ui=ui, settings=settings or {},
                                companies=companies, options=options, choose_again=choose_again, login=login)
    existing = workspace.state.get_account(name)
    if existing is not None and existing.plugin != plugin_name:
        raise ConfigError(f"an account called {name!r} already uses {existing.plugin}; pick another --name")
    if existing is None and wants_relogin(options or {}):
        # A mistyped --name must not quietly become a second account.
        known = ", ".join(a.name for a in workspace.accounts()) or "none"
        raise ConfigError(f"--relogin logs an existing account in again, and there is no account called "
                          f"{name!r} (accounts: {known}); to add it, run connect without --relogin")
    direction = AccountDirection.IMPORT if plugin.kind is PluginKind.SOURCE else AccountDirection.EXPORT
    merged = {**(existing.settings if existing else {}), **(settings or {})}
    account = Account(name=name, plugin=plugin_name, direction=direction, settings=merged)
    if direction is AccountDirection.EXPORT:
        workspace.export_options(account)  # refuse a bad filter now, not at the first sync
    available = list(login(account)) if login else _authenticate(workspace, account, ui, options)
    if existing is not None and existing.companies and not companies and not choose_again:
        account.companies = _keep_companies(existing, available)
    else:
        account.companies = choose_companies(available, companies, ui, multiple=plugin.kind is PluginKind.SOURCE)
    workspace.state.save_account(account)
    return account


def _authenticate(workspace: Workspace, account: Account, ui: UI, options: dict[str, Any] | None) -> list[Company]:
    """Run the plugin's ``auth`` (it stores the login in the account's secrets); the companies it reaches."""
    ctx = workspace.context(account, ui=ui, options=options)
    try:
        return list(workspace.plugins.call(account.plugin, "auth", account=account, ctx=ctx) or [])
    finally:
        ctx.close()


def _keep_companies(existing: Account, available: Sequence[Company]) -> list[Company]:
    """The companies chosen before, as the new login sees them; one it cannot reach is an error
    rather than a quietly shorter list."""
    if not available:  # the plugin lists no companies on login: nothing to check against
        return list(existing.companies)
    by_id = {c.id: c for c in available}
    if lost := [c for c in existing.companies if c.id not in by_id]:
        names = ", ".join(f"{c.id} ({c.name})" for c in lost)
        raise ConfigError(f"this login cannot reach {names}, synced by {existing.name} until now; log in as a "
                          f"user who can, or choose again with `invoicesync connect {existing.plugin} "
                          f"--name {existing.name} --companies`")
    return [by_id[c.id] for c in existing.companies]


def _log_in_declared(workspace: Workspace, account: Account, plugin_name: str, *, ui: UI,
                     settings: dict[str, Any], companies: Sequence[str], options: dict[str, Any] | None,
                     choose_again: bool, login: Callable[[Account], Sequence[Company]] | None) -> Account:
    """Log in an account declared in ``invoicesync.toml``: the login is stored for the account's
    secrets; the file stays the one place its settings and companies are written."""
    where = workspace.config.path or "invoicesync.toml"
    if account.plugin != plugin_name:
        raise ConfigError(f"account {account.name!r} uses {account.plugin} in {where}; run "
                          f"`invoicesync connect {account.plugin} --name {account.name}`")
    if settings:
        raise ConfigError(f"account {account.name!r} takes its settings from {where}; "
                          f"change {', '.join(sorted(settings))} there")
    if companies or choose_again:
        raise ConfigError(f"account {account.name!r} takes its companies from {where}; change them there")
    available = list(login(account)) if login else _authenticate(workspace, account, ui, options)
    listing = ", ".join(f"{c.id} ({c.name})" for c in available)
    if available and not account.companies and account.direction is AccountDirection.IMPORT:
        ui.echo(f"{where} lists no companies for {account.name}; this login can reach: {listing}")
    elif unreachable := [c.id for c in account.companies if available and c.id not in {a.id for a in available}]:
        ui.echo(f"{where} lists companies this login cannot reach for {account.name}: "
                f"{', '.join(unreachable)}; it can reach: {listing}")
    return account


def choose_companies(available: Sequence[Company], wanted: Sequence[str], ui: UI, *, multiple: bool) -> list[Company]:
    if list(wanted) == ["*"]:  # every company the login reaches (demo, scripts)
        return list(available) if multiple else list(available[:1])
    if wanted:
        return [_company_by_id_or_name(available, w) for w in wanted]
    if len(available) <= 1:
        return list(available)
    if not ui.interactive:
        listing = ", ".join(f"{c.id} ({c.name})" for c in available)
        raise ConfigError(f"choose the companies with --company (repeatable); this login can reach: {listing}")
    chosen = ui.choose("Which companies should be synced?",
                       [(c.id, f"{c.name} ({c.vat_number or c.id})") for c in available], multiple=multiple)
    if not chosen:
        raise ConfigError("no company was chosen")
    return [c for c in available if c.id in chosen]


def _company_by_id_or_name(available: Sequence[Company], wanted: str) -> Company:
    """``--company`` names a company by id, or by name when no id matches (never a guess between two)."""
    listing = ", ".join(f"{c.id} ({c.name})" for c in available) or "none"
    by_id = [c for c in available if c.id == wanted]
    if by_id:
        return by_id[0]
    by_name = [c for c in available if c.name == wanted] \
        or [c for c in available if c.name.strip().casefold() == wanted.strip().casefold()]
    if len(by_name) > 1:
        candidates = ", ".join(f"{c.id} ({c.name})" for c in by_name)
        raise ConfigError(f"more than one company is called {wanted!r}: {candidates}; pass its id to --company")
    if not by_name:
        raise ConfigError(f"this login cannot reach company {wanted}; it can reach: {listing}")
    return by_name[0]


def disconnect(workspace: Workspace, name: str) -> Account:
    account = workspace.account(name)
    if account.origin == "config":
        raise ConfigError(f"account {name!r} is defined in the config file; remove it there")
    from .webhooks import unsubscribe  # the service stops calling first, while the login still works

    unsubscribe(workspace, account)
    secrets = workspace.secrets(name)
    try:
        keys = workspace.plugins.get(account.plugin).info.secrets
    except PluginError:
        keys = ()
    # a webhook the service could not remove keeps calling, and is refused: its secret goes too
    webhook_keys = [k for record in workspace.state.webhooks(name) for k in record.secret_keys]
    for key in (*keys, "oauth_token", *webhook_keys):
        secrets.delete(key)
    workspace.state.delete_account(name)
    return account


def sandbox_settings(plugins: Plugins, plugin: str, running: RunningSandbox) -> dict[str, Any]:
    """Settings that point an account of ``plugin`` at a running sandbox, with the sandbox's CA
    when the plugin's settings take a ``ca_bundle``."""
    settings = dict(running.app.account_settings(running.url))
    if running.ca_file and "ca_bundle" in plugins.get(plugin).info.settings.model_fields:
        settings.setdefault("ca_bundle", str(running.ca_file))
    return settings


def connect_to_sandbox(workspace: Workspace, plugin: str, running: RunningSandbox, *, name: str,
                       settings: dict[str, Any] | None = None, ui: UI | None = None) -> Account:
    """Connect without a person (demo, conformance suites, benchmarks): the sandbox's own demo
    secrets, its settings plus ``settings``, every company the login reaches."""
    for key, value in running.app.account_secrets().items():
        workspace.secrets(name).set(key, value)
    merged = {**sandbox_settings(workspace.plugins, plugin, running), **(settings or {})}
    return connect(workspace, plugin, ui=ui or NonInteractiveUI(), name=name, settings=merged, companies=("*",))
