"""``plugins``: what is installed, what failed to load; ``plugins install`` adds connectors."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from dataclasses import dataclass

import click

from .. import __version__
from ..errors import ConfigError
from ._common import State, handle_errors, json_option, print_json


@click.group(invoke_without_command=True)
@json_option
@click.pass_context
def plugins(ctx: click.Context, as_json: bool) -> None:
    """List installed sources and targets, their versions, and plugins that failed to load."""
    if ctx.invoked_subcommand is not None:
        return
    found = ctx.find_object(State).plugins  # type: ignore[union-attr]
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


@dataclass
class IndexOptions:
    """Where to look for packages, as pip spells it; passed through to pip or uv."""

    find_links: tuple[str, ...] = ()
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    no_index: bool = False
    pre: bool = False
    upgrade: bool = False

    def arguments(self, *, uv: bool) -> list[str]:
        args = [arg for link in self.find_links for arg in ("--find-links", link)]
        if self.index_url:
            args += ["--index-url", self.index_url]
        args += [arg for url in self.extra_index_urls for arg in ("--extra-index-url", url)]
        if self.no_index:
            args.append("--no-index")
        if self.pre:
            args.append("--prerelease=allow" if uv else "--pre")
        if self.upgrade:
            args.append("--upgrade")
        return args


def package_names(names: tuple[str, ...]) -> list[str]:
    """``billit`` means ``invoicesync-billit``; anything with a dash, a path or a URL is taken as is."""
    return [n if ("-" in n or "/" in n or n.startswith(".")) else f"invoicesync-{n}"
            for n in names]


def installer_command(packages: list[str], options: IndexOptions) -> list[str]:
    """pip in this environment, else uv (environments made by uv have no pip), pointed at this Python.

    This core is pinned to its own version, so adding a connector never swaps the core under the
    connectors already installed: pip picks a connector release that supports this core, or says why not.
    """
    requirements = [*packages, f"invoicesync=={__version__}"]
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip", "install", *options.arguments(uv=False), *requirements]
    uv = _find_uv()
    if uv is not None:
        return [uv, "pip", "install", "--python", sys.executable, *options.arguments(uv=True), *requirements]
    raise ConfigError(
        f"this environment ({sys.prefix}) has no pip, and uv is not on PATH; "
        f"either run `uv pip install --python {sys.executable} {' '.join(packages)}`, "
        f"or add pip with `{sys.executable} -m ensurepip` and try again"
    )


def _find_uv() -> str | None:
    on_path = shutil.which("uv")
    if on_path:
        return on_path
    try:  # the `uv` package on PyPI ships the binary and says where it is
        from uv import find_uv_bin  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    try:
        return str(find_uv_bin())
    except FileNotFoundError:
        return None


@plugins.command()
@click.argument("names", nargs=-1, required=True)
@click.option("--upgrade", "-U", is_flag=True, help="Upgrade if already installed.")
@click.option("--find-links", "-f", "find_links", multiple=True, metavar="URL_OR_DIR",
              help="Also look for packages here (a folder of wheels, or an HTML page of links).")
@click.option("--index-url", "-i", metavar="URL", help="The package index to use instead of PyPI.")
@click.option("--extra-index-url", "extra_index_urls", multiple=True, metavar="URL",
              help="Another package index to look in, besides the main one.")
@click.option("--no-index", is_flag=True, help="Use no index: only --find-links.")
@click.option("--pre", is_flag=True, help="Allow pre-release versions.")
@handle_errors
def install(names: tuple[str, ...], upgrade: bool, find_links: tuple[str, ...], index_url: str | None,
            extra_index_urls: tuple[str, ...], no_index: bool, pre: bool) -> None:
    """Install connector packages into this same environment (``billit`` means ``invoicesync-billit``).

    Uses pip, or uv where the environment has none (as uv makes them); this invoicesync stays at
    its version, so pip picks connector releases that support it.
    """
    options = IndexOptions(find_links, index_url, extra_index_urls, no_index, pre, upgrade)
    command = installer_command(package_names(names), options)
    click.echo(" ".join(command), err=True)
    sys.exit(subprocess.call(command))
