"""Shared CLI plumbing: opening the workspace, JSON output, errors → exit codes, logging."""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ..errors import InvoiceSyncError
from ..pipeline import EXIT_FATAL
from ..secrets import RedactingFilter, redact
from ..workspace import Workspace

F = TypeVar("F", bound=Callable[..., Any])


class State:
    def __init__(self, home: Path | None, config: Path | None) -> None:
        self.home = home
        self.config = config
        self._workspace: Workspace | None = None

    def workspace(self) -> Workspace:
        if self._workspace is None:
            self._workspace = Workspace.open(self.home, config_file=self.config)
            click.get_current_context().call_on_close(self._workspace.close)
        return self._workspace


pass_state = click.make_pass_decorator(State)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")(func)


def print_json(data: Any) -> None:
    click.echo(redact(json.dumps(data, indent=2, default=str)))


def handle_errors(func: F) -> F:
    """Turn expected errors into a one-line message and the fatal exit code; never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except InvoiceSyncError as exc:
            click.secho(f"Error: {redact(str(exc))}", fg="red", err=True)
            sys.exit(EXIT_FATAL)

    return wrapper  # type: ignore[return-value]


def setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every URL at INFO; keep it to debug runs.
    logging.getLogger("httpx").setLevel(logging.DEBUG if verbosity >= 2 else logging.WARNING)
