"""``invoicesync state migrate``: a SQLite home's state copied into an empty PostgreSQL state.

The two hold one logical schema at one version, so rows copy column for column. Claims are not
copied (they only live while a run does), nor are request budgets (a pause or a rate lives for
seconds); blobs stay in the home. The home's logins are copied by ``state migrate`` itself
(``cli._secrets.migrate_home_secrets``), encrypted with this machine's key.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ..errors import ConfigError
from ._lock import RunnerInfo
from ._postgres import PostgresStore
from ._sql import STATE_TABLES, Params
from ._sqlite import SqliteStore

#: Rows read from SQLite at a time: a big library is never held in memory at once.
BATCH = 500


def _rows(source: SqliteStore, table: str) -> Iterator[tuple[list[str], list[Params]]]:
    last = 0
    while True:  # by rowid, so documents keep their order (the PostgreSQL identity follows it)
        rows = source._all(f"SELECT rowid AS copy_rowid, * FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT ?",
                           (last, BATCH))
        if not rows:
            return
        columns = [c for c in rows[0].keys() if c not in ("copy_rowid", "rowid")]  # noqa: SIM118 (a Row iterates values)
        yield columns, [tuple(row[c] for c in columns) for row in rows]
        last = rows[-1]["copy_rowid"]


def copy_to_postgres(home: Path, url: str) -> dict[str, int]:
    """Copy ``home``'s state.db into the empty PostgreSQL state at ``url``; rows copied per table.
    Holds the home's runner lock meanwhile, so no sync writes to the state.db during the copy."""
    path = home / "state.db"
    if not path.is_file():
        raise ConfigError(f"{path} does not exist: there is no SQLite state in {home} to migrate "
                          f"(choose the home with --home or INVOICESYNC_HOME)")
    source = SqliteStore(path)
    try:
        target = PostgresStore(url)
        try:
            if source.schema_version != target.schema_version:  # both were just migrated to the latest
                raise ConfigError(f"schema {source.schema_version} in {path} and {target.schema_version} at "
                                  f"{target.where} differ; upgrade invoicesync")
            with source.runner_lock(RunnerInfo.current()):
                return target.load_empty({table: _rows(source, table) for table in STATE_TABLES})
        finally:
            target.close()
    finally:
        source.close()
