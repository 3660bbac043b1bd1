"""``connect``, ``accounts``, ``disconnect``: the list of synced accounts."""

from __future__ import annotations

import sys
from typing import Any

import click

from ..accounts import connect as connect_account
from ..accounts import disconnect as disconnect_account
from ..context import PluginKind
from ..errors import ConfigError
from ..export_options import EXPORT_OPTION_NAMES, unknown_settings_message
from ..models import Account, AccountDirection
from ..workspace import Workspace
from ._common import State, handle_errors, json_option, pass_state, print_json
from ._ui import ClickUI

#: Flags for one ``connect`` that are handed to the plugin's ``auth`` as ``ctx.options``, not stored.
CONNECT_OPTIONS = frozenset({"relogin"})


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("plugin")
@click.option("--name", help="Account name (default: the plugin name).")
@click.option("--company", "companies", multiple=True,
              help="Company id or name to sync (repeatable); skips the checklist.")
@click.option("--no-browser", is_flag=True, help="Print the login URL instead of opening a browser.")
@click.option("--set", "pairs", multiple=True, metavar="KEY=VALUE", help="A plugin setting (repeatable).")
@click.argument("plugin_args", nargs=-1, type=click.UNPROCESSED)
@pass_state
@handle_errors
def connect(state: State, plugin: str, name: str | None, companies: tuple[str, ...], no_browser: bool,
            pairs: tuple[str, ...], plugin_args: tuple[str, ...]) -> None:
    """Add a synced account: log in to PLUGIN and choose the companies.

    Plugin settings can be given as --KEY VALUE (or --FLAG) after the plugin name, e.g.
    `invoicesync connect billit --environment sandbox`. Secrets are never taken from the command
    line: the plugin asks for them, or reads INVOICESYNC_<ACCOUNT>_<KEY> from the environment.
    """
    workspace = state.workspace()
    info = workspace.plugins.get(plugin).info
    fields = set(info.settings.model_fields)
    target = info.kind is PluginKind.TARGET
    settings: dict[str, Any] = {}
    options: dict[str, Any] = {"no_browser": no_browser}
    unknown: list[str] = []
    for key, value in [*_parse_pairs(pairs), *_parse_flags(plugin_args)]:
        if key in info.secrets:
            raise ConfigError(f"{key} is a secret: the plugin will ask for it, or set it in the environment")
        if key in fields or (target and key in EXPORT_OPTION_NAMES):
            settings[key] = value
        elif key in CONNECT_OPTIONS:
            options[key] = value
        else:
            unknown.append(key)
    if unknown:  # a typo (--tempalte) must not be dropped silently
        message = unknown_settings_message(f"connect {plugin}", sorted(unknown), fields, target=target)
        raise ConfigError(f"{message}; connect options: {', '.join(sorted(CONNECT_OPTIONS))}")
    ui = ClickUI(interactive=sys.stdin.isatty(), no_browser=no_browser)
    account = connect_account(workspace, plugin, ui=ui, name=name, settings=settings, companies=companies,
                              options=options)
    chosen = ", ".join(f"{c.name} ({c.id})" for c in account.companies) or "no company selection needed"
    click.echo(f"Connected {account.name} ({account.plugin}, {account.direction.value}): {chosen}")


def _parse_pairs(pairs: tuple[str, ...]) -> list[tuple[str, Any]]:
    result = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--set")
        result.append((key.strip().replace("-", "_"), value))
    return result


def _parse_flags(args: tuple[str, ...]) -> list[tuple[str, Any]]:
    result: list[tuple[str, Any]] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise click.UsageError(f"unexpected argument {arg!r}; plugin settings look like --key value")
        key, eq, value = arg[2:].partition("=")
        key = key.replace("-", "_")
        if eq:
            result.append((key, value))
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            result.append((key, args[i + 1]))
            i += 1
        else:
            result.append((key, True))
        i += 1
    return result


@click.command()
@json_option
@pass_state
@handle_errors
def accounts(state: State, as_json: bool) -> None:
    """List the synced accounts: direction, companies, last sync and its result."""
    workspace = state.workspace(writable=False)
    rows: list[dict[str, Any]] = []
    for account in workspace.accounts():
        rows.append({
            "name": account.name,
            "plugin": account.plugin,
            "direction": account.direction.value if workspace.direction_known(account) else None,
            "origin": account.origin,
            "companies": [c.model_dump() for c in account.companies],
            "last_sync": workspace.state.last_sync(account.name),
            "problem": workspace.account_problem(account),
            "export_options": _export_options(workspace, account),
        })
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo("No accounts yet. Add one with `invoicesync connect PLUGIN` (see `invoicesync plugins`).")
        return
    for row in rows:
        companies = ", ".join(c["name"] for c in row["companies"]) or "-"
        last = row["last_sync"]
        when = f"last sync {last['at']} {last.get('result', '')}" if last else "never synced"
        click.echo(f"{row['name']:<20} {row['direction'] or '?':<7} {row['plugin']:<12} {when:<36} {companies}")
        if row["problem"]:
            click.secho(f"{'':<20} unavailable: {row['problem']}", fg="yellow")
        if row["export_options"]:
            narrowed = "  ".join(f"{k}={_show(v)}" for k, v in row["export_options"].items())
            click.echo(f"{'':<20} exports only: {narrowed}")


def _export_options(workspace: Workspace, account: Account) -> dict[str, Any]:
    """What a target's export options narrow (``{}``: everything), or why they are invalid."""
    if account.direction is not AccountDirection.EXPORT:
        return {}
    try:
        return workspace.export_options(account).describe()
    except ConfigError as exc:
        return {"invalid": str(exc)}


def _show(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


@click.command()
@click.argument("name")
@pass_state
@handle_errors
def disconnect(state: State, name: str) -> None:
    """Remove account NAME and its stored secrets (the documents library is kept)."""
    account = disconnect_account(state.workspace(), name)
    click.echo(f"Disconnected {account.name}.")
