"""``plugins``: what is installed, what failed to load; ``plugins install`` adds connectors."""

from __future__ import annotations

import subprocess
import sys

import click

from ..plugins import Plugins
from ._common import handle_errors, json_option, print_json


@click.group(invoke_without_command=True)
@json_option
@click.pass_context
def plugins(ctx: click.Context, as_json: bool) -> None:
    """List installed sources and targets, their versions, and plugins that failed to load."""
    if ctx.invoked_subcommand is not None:
        return
    found = Plugins.installed()
    rows = [{
        "name": p.name, "kind": p.kind.value, "title": p.info.title, "distribution": p.distribution,
        "version": p.version, "api_version": list(p.info.api_version), "hooks": p.hooks,
    } for p in sorted(found.loaded.values(), key=lambda p: (p.kind.value, p.name))]
    failures = [{"name": f.name, "group": f.group, "error": f.error} for f in found.failures]
    if as_json:
        print_json({"plugins": rows, "failures": failures})
        return
    for row in rows:
        version = f"{row['distribution']} {row['version']}" if row["distribution"] else "built-in"
        click.echo(f"{row['kind']:<7} {row['name']:<14} {row['title']:<34} {version}")
    for failure in failures:
        click.secho(f"FAILED  {failure['name']:<14} {failure['error']}", fg="red")


@plugins.command()
@click.argument("names", nargs=-1, required=True)
@click.option("--upgrade", "-U", is_flag=True, help="Upgrade if already installed.")
@handle_errors
def install(names: tuple[str, ...], upgrade: bool) -> None:
    """Install connector packages into this same environment (``billit`` means ``invoicesync-billit``)."""
    packages = [n if ("-" in n or "/" in n or n.startswith(".")) else f"invoicesync-{n}" for n in names]
    command = [sys.executable, "-m", "pip", "install", *(["--upgrade"] if upgrade else []), *packages]
    click.echo(" ".join(command), err=True)
    sys.exit(subprocess.call(command))
