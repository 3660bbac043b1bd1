"""``state``: where the state lives, and moving it (``state migrate --to postgresql://…``,
``state copy-blobs --to s3://…``)."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import ConfigError
from ..plugins import Plugins
from ..state import SqliteStore, check_blob_url, is_postgres_url, open_blob_store, redacted
from ..workspace import default_home
from ._common import State, handle_errors, json_option, pass_state, print_json


@click.group()
def state() -> None:
    """The state's store: copy a home's state.db into PostgreSQL (`state migrate`), its blobs into
    S3 or a shared folder (`state copy-blobs`).

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
    that already holds any. The state.db is left as it was; blobs stay in the home. The home's
    logins are copied into the state too, encrypted with this machine's key (made now if it has
    none; `secrets key export` copies it to the other machines). Then point invoicesync at it:
    state_url = "postgresql://…" in invoicesync.toml, or
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
    counts["secrets"] = _copy_logins(home, url, obj.plugins)
    if as_json:
        print_json({"from": str(home / "state.db"), "to": redacted(url), "copied": counts})
        return
    click.echo(f"Copied {home / 'state.db'} to {redacted(url)}:")
    for table, count in counts.items():
        click.echo(f"  {table}: {count}")
    click.echo("Use it: state_url = \"postgresql://…\" in invoicesync.toml, or INVOICESYNC_STATE_URL.")


def _copy_logins(home: Path, url: str, plugins: Plugins) -> int:
    """The home's logins (its keyring or secrets.json, and its state.db's own with shared_secrets
    on there) into the new state, encrypted with this machine's key. Read from the home itself,
    whatever state_url says (the compose file sets it for every command)."""
    from ..secrets import choose_backend
    from ..state._postgres import PostgresStore
    from ..state._secrets import StateSecretBackend
    from ._secrets import migrate_home_secrets

    home_backend = choose_backend(home)
    source_state, target = SqliteStore(home / "state.db", read_only=True), PostgresStore(url)
    try:
        backend, accounts = StateSecretBackend(target, home_backend), source_state.list_accounts()
        copied = migrate_home_secrets(home_backend, backend, accounts, plugins)
        if source_state._one("SELECT 1 FROM secrets LIMIT 1"):
            copied += migrate_home_secrets(StateSecretBackend(source_state, home_backend), backend, accounts, plugins)
        return len(set(copied))
    finally:
        source_state.close()
        target.close()


@state.command("copy-blobs")
@click.option("--to", "url", required=True, metavar="URL",
              help="Where to copy: s3://bucket/prefix or file:///shared/folder.")
@json_option
@pass_state
@handle_errors
def copy_blobs_(obj: State, url: str, as_json: bool) -> None:
    """Copy every blob of this home's blob store into another (S3, or a shared folder).

    \b
    Streams each blob the target lacks, skips the ones it has; safe to run again, and while a sync
    runs (run it once more after the last sync on the old store). The source is the home's blobs/,
    or the store blob_url names now. Then point invoicesync at the new one: blob_url = "…" in
    invoicesync.toml, or INVOICESYNC_BLOB_URL.
    """
    from ..state._blobs import copy_blobs

    check_blob_url(url)
    workspace = obj.workspace(writable=False)
    source = workspace.blobs
    target = open_blob_store(workspace.home, url)
    if target.url == source.url:
        raise ConfigError(f"--to {url!r} is the store the blobs are in already")
    counts = copy_blobs(source, target)
    if as_json:
        print_json({"from": source.url, "to": target.url, **counts})
        return
    click.echo(f"Copied {counts['copied']} blob(s) from {source.url} to {target.url} "
               f"({counts['present']} already there).")
    if counts["damaged"]:
        click.echo(f"{counts['damaged']} blob(s) no longer match their sha256 and were not copied under it; "
                   f"`invoicesync sync --full` fetches those files again.")
