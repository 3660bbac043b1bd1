"""The ``invoicesync`` command line. Commands parse and print; the core does the work."""

from __future__ import annotations

from pathlib import Path

import click

from .. import __version__
from ..plugins import Plugins
from ._accounts import accounts, connect, disconnect
from ._common import State, setup_logging
from ._dev import demo, sandbox
from ._documents import documents
from ._new_plugin import new_plugin
from ._plugins import plugins
from ._serve import serve, serve_user
from ._sync import sync


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", type=click.Path(path_type=Path), envvar="INVOICESYNC_HOME",
              help="State folder (default: the platform's user data dir; env INVOICESYNC_HOME).")
@click.option("--config", type=click.Path(path_type=Path, exists=True, dir_okay=False), envvar="INVOICESYNC_CONFIG",
              help="Config file (default: ./invoicesync.toml, then HOME/invoicesync.toml).")
@click.option("-v", "--verbose", count=True, help="More logging (-vv for HTTP details).")
@click.version_option(__version__, prog_name="invoicesync")
@click.pass_context
def cli(ctx: click.Context, home: Path | None, config: Path | None, verbose: int) -> None:
    """Sync invoices from invoicing platforms to where you keep and book them.

    \b
    The flow:  invoicesync connect billit        # log in, choose the companies
               invoicesync connect dropbox       # where the documents should go
               invoicesync sync                  # import, then export each document once
               invoicesync documents             # the library and its delivery status
    """
    setup_logging(verbose)
    ctx.obj = State(home, config)


for command in (plugins, connect, accounts, disconnect, sync, documents, sandbox, demo, new_plugin, serve,
                serve_user):
    cli.add_command(command)


def _plugin_commands() -> None:
    # Plugins may add commands (register_commands is the one broadcast hook).
    Plugins.installed().pm.hook.register_commands(cli=cli)


def main() -> None:
    setup_logging(0)  # until the options are parsed: plugin load failures must still be readable
    _plugin_commands()
    cli()
