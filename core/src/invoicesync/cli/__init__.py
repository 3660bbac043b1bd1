"""The ``invoicesync`` command line. Commands parse and print; the core does the work.

Drawing the CLI imports no command module and no plugin: ``invoicesync --help`` must answer at
once, so each command is imported when it runs (``_LazyGroup``), and plugins' commands are named by
entry points (group ``invoicesync.commands``) that are loaded only when called.
"""

from __future__ import annotations

import gc
import importlib
import os
import sys
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .. import __version__

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..plugins import Plugins

#: Entry-point group through which a plugin adds CLI commands: ``NAME = "module:click_command"``.
COMMANDS_GROUP = "invoicesync.commands"

#: The core's commands: where each lives, and its one-line help for ``--help`` (a test keeps the
#: line equal to the command's own, so the two cannot drift apart).
CORE_COMMANDS: dict[str, tuple[str, str, str]] = {
    "plugins": ("._plugins", "plugins",
                "List installed sources and targets, their versions, and plugins that failed to load."),
    "connect": ("._accounts", "connect", "Add a synced account: log in to PLUGIN and choose the companies."),
    "accounts": ("._accounts", "accounts",
                 "List the synced accounts: direction, companies, last sync and its result."),
    "disconnect": ("._accounts", "disconnect",
                   "Remove account NAME and its stored secrets (the documents library is kept)."),
    "sync": ("._sync", "sync",
             "Import new and changed documents, then export each one to every target, exactly once."),
    "documents": ("._documents", "documents",
                  "The Documents view: what was imported, and where each document was delivered."),
    "sandbox": ("._dev", "sandbox",
                "Serve a local emulator of PLUGIN's service on loopback, for trying things and for tests."),
    "demo": ("._dev", "demo", "Run the whole flow on built-in sandboxes: no accounts needed, nothing to type."),
    "new-plugin": ("._new_plugin", "new_plugin",
                   "Create a plugin package NAME: hooks, a sandbox, the conformance tests and a README."),
    "serve": ("._serve", "serve",
              "Serve the dashboard (Sync, Documents, History) on HOST:PORT and run the accounts' schedules."),
    "serve-user": ("._serve", "serve_user", "Dashboard admins: stored in the home (argon2 hashes, mode 0600)."),
    "state": ("._state", "state", "The state's store: copy a home's state.db into PostgreSQL (`state migrate`), "
                                  "its blobs into S3 or a shared folder (`state copy-blobs`)."),
    "worker": ("._worker", "worker",
               "Run a Celery worker for `sync --executor celery`: imports and exports, from the broker's queue."),
    "secrets": ("._secrets", "secrets", "Logins kept in a shared state: this machine's key "
                                        "(`secrets key export|import`), and copying this home's logins into "
                                        "the state (`secrets migrate`)."),
}


@cache
def plugin_command_entry_points() -> dict[str, metadata.EntryPoint]:
    """Commands plugins declare (read from metadata: nothing is imported). A core name wins."""
    return {ep.name: ep for ep in metadata.entry_points(group=COMMANDS_GROUP) if ep.name not in CORE_COMMANDS}


class _LazyGroup(click.Group):
    """A group whose commands are imported on first use, not to draw ``--help``."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(CORE_COMMANDS) | set(plugin_command_entry_points()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = self.commands.get(cmd_name)
        if command is not None:
            return command
        if cmd_name in CORE_COMMANDS:
            if cmd_name == "sync" and one_command_process:
                collect_young_less_often()  # from its imports on: they build ~400 modules' objects
            module, attribute, _ = CORE_COMMANDS[cmd_name]
            command = getattr(importlib.import_module(module, __name__), attribute)
        elif cmd_name in plugin_command_entry_points():
            command = _load_plugin_command(plugin_command_entry_points()[cmd_name])
        else:
            self._call_register_commands(ctx)  # API 1 plugins add commands through the hook
            return self.commands.get(cmd_name)
        if command is not None:
            self.add_command(command, cmd_name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Like click's, from the one-line helps above (and the plugin's name) without importing."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max((len(n) for n in names), default=0)
        rows = []
        for name in names:
            command = self.commands.get(name) or _Placeholder(name, self._short_help(name))
            if not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    @staticmethod
    def _short_help(name: str) -> str:
        if name in CORE_COMMANDS:
            return CORE_COMMANDS[name][2]
        entry_point = plugin_command_entry_points()[name]
        dist = entry_point.dist.name if entry_point.dist is not None else entry_point.value.split(":")[0]
        return f"(from {dist}; `invoicesync {name} --help` for more)"

    def _call_register_commands(self, ctx: click.Context) -> None:
        from ._common import setup_logging

        setup_logging(0)  # plugin load failures must be readable before the options are parsed
        (_given_plugins(ctx) or _default_plugins()).register_commands(self)


def _given_plugins(ctx: click.Context) -> Plugins | None:
    """The plugins a caller handed in with ``cli.main(args, obj=plugins)``, before ``cli`` runs."""
    from ..plugins import Plugins

    obj = ctx.find_root().obj
    return obj if isinstance(obj, Plugins) else None


def _default_plugins() -> Plugins:
    from ._common import default_plugins

    return default_plugins()


class _Placeholder(click.Command):
    def __init__(self, name: str, short_help: str) -> None:
        super().__init__(name, help=short_help)


def _load_plugin_command(entry_point: metadata.EntryPoint) -> click.Command | None:
    try:
        command = entry_point.load()
    except Exception as exc:  # a broken plugin must not break the CLI
        raise click.ClickException(f"the command {entry_point.name!r} ({entry_point.value}) failed to load: "
                                   f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(command, click.Command):
        raise click.ClickException(f"{entry_point.value} is not a click command")
    return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
    from ._common import State, setup_logging

    setup_logging(verbose)
    ctx.obj = State(home, config, plugins=_given_plugins(ctx))


#: Allocations between two young-generation collections during a sync (Python's default: 700).
GC_YOUNG_THRESHOLD = 10_000


def collect_young_less_often() -> None:
    """The sync's collector setting (see ``_sync.quiet_collector``), applied as soon as the command
    is known: its imports and plugin loads allocate hundreds of thousands of long-lived objects,
    and each young collection on the way promotes them toward the older generations that are
    then walked again; a few hundredths of a CPU second of the start."""
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(GC_YOUNG_THRESHOLD, young), middle, old)


#: Set by ``main()``: this process runs one command and exits (not a test's ``CliRunner``, not a server),
#: so a command may tune process-wide settings such as the garbage collector's for its own run.
one_command_process = False


#: Set by a command (``sync``) once everything it opened is closed and durable: its process may then
#: end without the interpreter's teardown (see ``exit_without_teardown``).
ended_cleanly = False


def mark_ended_cleanly() -> None:
    global ended_cleanly
    ended_cleanly = True


def main(args: Sequence[str] | None = None) -> Any:
    global one_command_process
    one_command_process = True
    without_httpx_command_line()
    return cli(args)


def run() -> None:
    """The ``invoicesync`` command and ``python -m invoicesync``: ``main()``, then the process ends,
    without the interpreter's teardown when the command ended cleanly (``main()`` alone, as an
    embedding or a test calls it, always returns or raises as click does)."""
    try:
        main()
    except SystemExit as stop:
        # Here click has closed the command's context: the workspace (state, blobs) is closed.
        if ended_cleanly:
            exit_without_teardown(stop.code)
        raise


def exit_without_teardown(code: int | str | None) -> None:
    """End the process now, skipping the interpreter's teardown: freeing, one by one, every object
    a run built (modules, plugins, models, caches) takes a tenth of a second or more after the last
    answer and writes nothing. What the teardown does that matters still happens: the ``atexit``
    handlers run (logging flushes and closes its files, coverage saves, ...) and the standard
    streams are flushed. Only when no other non-daemon thread is alive (the normal shutdown would
    wait for it) and no profiler or debugger is attached (``python -m cProfile -m invoicesync``
    writes its report after the command returns): otherwise this returns and the caller exits the
    usual way. Durability does not
    depend on it: the state is committed and closed, blobs and delivered files are closed (and
    fsynced where the store does so) before this is called, exactly as a kill at that point."""
    import atexit
    import threading  # here, not at the top: ``--help`` does not need it

    main_thread = threading.main_thread()
    if any(t.is_alive() and not t.daemon and t is not main_thread for t in threading.enumerate()):
        return
    if sys.getprofile() is not None or sys.gettrace() is not None:  # cProfile, a debugger: they report after
        return
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # sys.exit("message"): printed, and 1, as Python does
        print(code, file=sys.stderr)
        status = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: Python's own exit would report it with 120
            status = status or 120
    os._exit(status)


def without_httpx_command_line() -> None:
    """httpx imports its own command line (``httpx._main``: rich's tables and syntax, pygments'
    lexers) whenever those are installed, as rich is here: a tenth of a CPU second of every start
    that talks HTTP. This process never runs httpx's command line, so that one import is refused
    (``None`` in ``sys.modules``; httpx then defines a stub ``httpx.main``). Only before httpx is
    imported, and only here, in a process that runs one command: an embedding keeps httpx whole."""
    if "httpx" not in sys.modules:
        modules: dict[str, Any] = sys.modules
        modules.setdefault("httpx._main", None)
