"""State: accounts, cursors, the documents library, the delivery ledger, plugin state, blobs.
In the home's SQLite state.db, or in PostgreSQL (``state_url``); blobs in the home's ``blobs/``, a
shared folder or S3 (``blob_url``)."""

from pathlib import Path

from ..errors import ConfigError
from ._blobs import BlobStore, check_blob_url, open_blob_store
from ._blobs_folder import FolderBlobStore
from ._blobs_home import HomeBlobStore
from ._history import LibraryCounts, LibraryPage, LoggedDelivery, RunRecord
from ._lock import RunnerBusy, RunnerInfo
from ._named import LockTimeout
from ._problems import describe_backend_error, describe_state_error
from ._schedules import ScheduleRecord
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
from ._url import is_postgres_url, redacted
from ._webhooks import WebhookRecord


def open_state(home: Path, url: str | None = None) -> StateStore:
    """The state store: PostgreSQL when ``url`` names one (``state_url``), else the home's state.db."""
    if url is None:
        return SqliteStore(home / "state.db")
    if not is_postgres_url(url):
        raise ConfigError(f"state_url {redacted(url)!r} is not a postgresql:// URL; leave it out to keep the "
                          f"state in {home / 'state.db'}")
    try:
        from ._postgres import PostgresStore
    except ImportError:
        raise ConfigError("a PostgreSQL state (state_url) needs psycopg: pip install 'invoicesync[postgres]'"
                          ) from None
    return PostgresStore(url)


__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "BlobStore",
    "DocumentFilter",
    "FailingSince",
    "FolderBlobStore",
    "HomeBlobStore",
    "Failure",
    "KeyValue",
    "LibraryCounts",
    "LibraryEntry",
    "LibraryPage",
    "LockTimeout",
    "LoggedDelivery",
    "PersistentFailure",
    "RunnerBusy",
    "RunRecord",
    "ScheduleRecord",
    "RunnerInfo",
    "SqliteStore",
    "StateStore",
    "UpsertOutcome",
    "WebhookRecord",
    "check_blob_url",
    "describe_backend_error",
    "describe_state_error",
    "is_postgres_url",
    "open_blob_store",
    "open_state",
    "redacted",
]
