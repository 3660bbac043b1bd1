"""Connecting and disconnecting accounts: the "Sync → add an account → log in → choose companies" flow."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .context import UI, NonInteractiveUI, PluginKind
from .errors import ConfigError, PluginError
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
) -> Account:
    """Add (or re-connect) an account: validate settings, run the plugin's ``auth``, choose companies."""
    plugin = workspace.plugins.get(plugin_name)
    name = name or plugin_name
    existing = workspace.state.get_account(name)
    if existing is not None and existing.plugin != plugin_name:
        raise ConfigError(f"an account called {name!r} already uses {existing.plugin}; pick another --name")
    if any(a.name == name and a.origin == "config" for a in workspace.accounts()):
        raise ConfigError(f"account {name!r} is defined in the config file; change it there")
    direction = AccountDirection.IMPORT if plugin.kind is PluginKind.SOURCE else AccountDirection.EXPORT
    merged = {**(existing.settings if existing else {}), **(settings or {})}
    account = Account(name=name, plugin=plugin_name, direction=direction, settings=merged)
    if direction is AccountDirection.EXPORT:
        workspace.export_options(account)  # refuse a bad filter now, not at the first sync
    ctx = workspace.context(account, ui=ui, options=options)
    try:
        available = workspace.plugins.call(plugin_name, "auth", account=account, ctx=ctx) or []
    finally:
        ctx.close()
    account.companies = choose_companies(available, companies, ui, multiple=plugin.kind is PluginKind.SOURCE)
    workspace.state.save_account(account)
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
    secrets = workspace.secrets(name)
    try:
        keys = workspace.plugins.get(account.plugin).info.secrets
    except PluginError:
        keys = ()
    for key in (*keys, "oauth_token"):
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
