"""``invoicesync new-plugin``: render the plugin template into a ready-to-test package."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import click

from ..errors import ConfigError
from ._common import handle_errors

NAME = re.compile(r"^[a-z][a-z0-9_]{1,30}$")


def render_plugin(name: str, kind: str, folder: Path, *, title: str | None = None) -> Path:
    """Render the bundled copier template for a ``kind`` plugin called ``name`` into ``folder``."""
    if not NAME.match(name):
        raise ConfigError(f"plugin name {name!r}: use 2 to 31 lowercase letters, digits or underscores, "
                          "starting with a letter")
    if folder.exists() and any(folder.iterdir()):
        raise ConfigError(f"{folder} exists and is not empty; choose another --dir")
    try:
        import copier
    except ImportError:
        raise ConfigError("new-plugin needs copier: pip install copier") from None
    data = {"name": name, "kind": kind}
    if title:
        data["title"] = title
    template = resources.files("invoicesync") / "templates" / "plugin"
    with resources.as_file(template) as path:
        copier.run_copy(str(path), folder, data=data, defaults=True, quiet=True, unsafe=False)
    return folder


@click.command("new-plugin")
@click.argument("name")
@click.option("--kind", type=click.Choice(["source", "target"]), required=True,
              help="A source imports documents; a target delivers them.")
@click.option("--dir", "folder", type=click.Path(path_type=Path), default=None,
              help="Where to create the package (default: ./invoicesync-NAME).")
@click.option("--title", default=None, help="The service's name as people write it (default: from NAME).")
@handle_errors
def new_plugin(name: str, kind: str, folder: Path | None, title: str | None) -> None:
    """Create a plugin package NAME: hooks, a sandbox, the conformance tests and a README.

    \b
    Then:  cd invoicesync-NAME && pip install -e . && pytest
    """
    folder = (folder or Path(f"invoicesync-{name.replace('_', '-')}")).resolve()
    render_plugin(name, kind, folder, title=title)
    click.echo(f"Created the {kind} plugin {name!r} in {folder}")
    click.echo(f"Next:  cd {folder} && pip install -e . && pytest")
