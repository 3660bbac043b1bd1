"""``state``: where the state lives, and moving it (``state migrate --to postgresql://…``)."""

from __future__ import annotations

import click

from ..errors import ConfigError
from ..state import is_postgres_url, redacted
from ..workspace import default_home
from ._common import State, handle_errors, json_option, pass_state, print_json


@click.group()
def state() -> None:
    """The state's store: copy a home's state.db into PostgreSQL (`state migrate`).

    The state (accounts, cursors, the library, the delivery ledger) is in the home's state.db, or in
    PostgreSQL with state_url = "postgresql://…" in invoicesync.toml (docs/scale-out.md).
    """


@state.command()
@click.option("--to", "url", required=True, metavar="URL",
              help="An empty PostgreSQL state: postgresql://user@host/db (a password is better in ~/.pgpass).")
@json_option
@pass_state
@handle_errors
def migrate(obj: State, url: str, as_json: bool) -> None:
    """Copy this home's SQLite state into an empty PostgreSQL state.

    \b
    Copies accounts, cursors, the library, the ledger, failures, plugin state, past runs and the
    delivery history; refuses a target
    that already holds any. The state.db is left as it was. Blobs and secrets stay in the home.
    Then point invoicesync at it: state_url = "postgresql://…" in invoicesync.toml, or
    INVOICESYNC_STATE_URL.
    """
    if not is_postgres_url(url):
        raise ConfigError(f"--to {redacted(url)!r} is not a postgresql:// URL")
    try:
        from ..state._copy import copy_to_postgres
    except ImportError:
        raise ConfigError("a PostgreSQL state needs psycopg: pip install 'invoicesync[postgres]'") from None
    home = obj.home or default_home()
    counts = copy_to_postgres(home, url)
    if as_json:
        print_json({"from": str(home / "state.db"), "to": redacted(url), "copied": counts})
        return
    click.echo(f"Copied {home / 'state.db'} to {redacted(url)}:")
    for table, count in counts.items():
        click.echo(f"  {table}: {count}")
    click.echo("Use it: state_url = \"postgresql://…\" in invoicesync.toml, or INVOICESYNC_STATE_URL.")
