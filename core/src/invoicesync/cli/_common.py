"""Shared CLI plumbing: opening the workspace, JSON output, errors → exit codes, logging."""

from __future__ import annotations

import functools
import json
import logging
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from ..errors import InvoiceSyncError
from ..pipeline import EXIT_FATAL
from ..plugins import Plugins
from ..secrets import RedactingFilter, RedactingFormatter, redact, safe_error_text
from ..state import describe_backend_error, describe_state_error
from ..workspace import Workspace, default_home

F = TypeVar("F", bound=Callable[..., Any])


@functools.cache
def default_plugins() -> Plugins:
    """The installed plugins, discovered once per process: the CLI's edge is the one place that
    keeps a default; everything past it is handed the instance (``State.plugins``)."""
    return Plugins.installed()


class State:
    """What every command is handed (click's ``ctx.obj``): the home, the config and the plugins.

    ``plugins``: the set the commands use; ``None`` means the installed ones. Callers (tests, an
    embedding program) pass theirs as ``cli.main(args, obj=plugins)``."""

    def __init__(self, home: Path | None, config: Path | None, plugins: Plugins | None = None) -> None:
        self.home = home
        self.config = config
        self._plugins = plugins
        self._workspace: Workspace | None = None

    @property
    def plugins(self) -> Plugins:
        return self._plugins if self._plugins is not None else default_plugins()

    def workspace(self, *, writable: bool = True) -> Workspace:
        """The home, opened once. Commands that only read pass ``writable=False``, so they work on
        a home this user may not write (a read-only mount, another user's service home)."""
        if self._workspace is None:
            self._workspace = Workspace.open(self.home, plugins=self.plugins, config_file=self.config,
                                             writable=writable)
            click.get_current_context().call_on_close(self._workspace.close)
        return self._workspace

    def state_path(self) -> Path:
        return (self.home or default_home()) / "state.db"


pass_state = click.make_pass_decorator(State)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")(func)


def print_json(data: Any) -> None:
    click.echo(redact(json.dumps(data, indent=2, default=str)))


def handle_errors(func: F) -> F:
    """Turn every error into a one-line message and the fatal exit code; never a traceback.

    Python's own exit code for an uncaught exception is 1, which means "partial" here: a crash must
    never look like a run that merely had some failed documents.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except InvoiceSyncError as exc:
            fail(str(exc))
        except sqlite3.Error as exc:  # e.g. the state database went bad or read-only mid-command
            fail(describe_state_error(_state_path(), exc))
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            fail(f"{where}{exc.strerror or exc}; check that this user may write there and that the disk has room")
        except Exception as exc:
            if backend := describe_backend_error(exc):  # a PostgreSQL state's server went away
                fail(backend)
            logging.getLogger("invoicesync").info("internal error", exc_info=True)
            fail(f"internal error: {safe_error_text(exc)} (run with -v for the traceback, and please report it)")

    return wrapper  # type: ignore[return-value]


def fail(message: str) -> NoReturn:
    click.secho(f"Error: {redact(message)}", fg="red", err=True)
    sys.exit(EXIT_FATAL)


def _state_path() -> Path:
    context = click.get_current_context(silent=True)
    state = context.find_object(State) if context else None
    return state.state_path() if state else default_home() / "state.db"


def setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(RedactingFormatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every URL at INFO; keep it to debug runs.
    logging.getLogger("httpx").setLevel(logging.DEBUG if verbosity >= 2 else logging.WARNING)


def use_json_logs() -> None:
    """Log one JSON object per line (``serve --log-format json``), still redacted."""
    from ..logs import JsonFormatter

    for handler in logging.getLogger().handlers:
        handler.setFormatter(JsonFormatter())
