"""State: accounts, cursors, the documents library, the delivery ledger, plugin state, blobs."""

from pathlib import Path

from ._blobs import BlobStore
from ._history import LibraryCounts, LibraryPage, LoggedDelivery, RunRecord
from ._lock import RunnerBusy, RunnerInfo
from ._problems import describe_state_error
from ._sqlite import MIGRATIONS, SCHEMA_VERSION, SqliteStore
from ._store import (
    DocumentFilter,
    FailingSince,
    Failure,
    KeyValue,
    LibraryEntry,
    PersistentFailure,
    StateStore,
    UpsertOutcome,
)


def open_state(home: Path) -> StateStore:
    """The state store for a home folder (SQLite today; the interface allows others)."""
    return SqliteStore(home / "state.db")


__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "BlobStore",
    "DocumentFilter",
    "FailingSince",
    "Failure",
    "KeyValue",
    "LibraryCounts",
    "LibraryEntry",
    "LibraryPage",
    "LoggedDelivery",
    "PersistentFailure",
    "RunnerBusy",
    "RunRecord",
    "RunnerInfo",
    "SqliteStore",
    "StateStore",
    "UpsertOutcome",
    "describe_state_error",
    "open_state",
]
