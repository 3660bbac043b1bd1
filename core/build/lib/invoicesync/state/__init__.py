"""State: accounts, cursors, the documents library, the delivery ledger, plugin state, blobs."""

from pathlib import Path

from ._blobs import BlobStore
from ._sqlite import MIGRATIONS, SCHEMA_VERSION, SqliteStore
from ._store import DocumentFilter, Failure, KeyValue, StateStore, UpsertOutcome


def open_state(home: Path) -> StateStore:
    """The state store for a home folder (SQLite today; the interface allows others)."""
    return SqliteStore(home / "state.db")


__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "BlobStore",
    "DocumentFilter",
    "Failure",
    "KeyValue",
    "SqliteStore",
    "StateStore",
    "UpsertOutcome",
    "open_state",
]
