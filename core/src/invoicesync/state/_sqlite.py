"""The default state store: one SQLite file, versioned schema, forward-only migrations."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from ..models import Document
from ._budgets import FileBudgetLedger
from ._lock import FileRunnerLock, RunnerInfo
from ._named import FileNamedLocks
from ._sql import Params, SqlStore
from ._store import UpsertOutcome

# Each migration takes the schema from version i to i+1. Append only; never edit a released one.
MIGRATIONS: list[str] = [
    # 1: accounts, cursors, library, ledger, plugin key-value state
    """
    CREATE TABLE accounts (
        name TEXT PRIMARY KEY, plugin TEXT NOT NULL, direction TEXT NOT NULL,
        settings TEXT NOT NULL, companies TEXT NOT NULL, created_at TEXT NOT NULL,
        last_sync TEXT
    );
    CREATE TABLE cursors (
        account TEXT NOT NULL, company TEXT NOT NULL, cursor TEXT, updated_at TEXT NOT NULL,
        PRIMARY KEY (account, company)
    );
    CREATE TABLE documents (
        id TEXT PRIMARY KEY, account TEXT NOT NULL, company TEXT NOT NULL, source_id TEXT NOT NULL,
        direction TEXT NOT NULL, kind TEXT NOT NULL, number TEXT, issue_date TEXT,
        version TEXT NOT NULL, body TEXT NOT NULL, first_seen TEXT NOT NULL, updated_at TEXT NOT NULL
    );
    CREATE INDEX documents_account ON documents (account, company);
    CREATE TABLE deliveries (
        document_id TEXT NOT NULL, target TEXT NOT NULL, version TEXT NOT NULL, status TEXT NOT NULL,
        target_id TEXT, target_path TEXT, content_hash TEXT, message TEXT, at TEXT NOT NULL,
        PRIMARY KEY (document_id, target)
    );
    CREATE TABLE kv (
        account TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (account, key)
    );
    """,
    # 2: deletions are kept (marked, never dropped), plugin facts on deliveries, failed fetches
    """
    ALTER TABLE documents ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE deliveries ADD COLUMN extra TEXT NOT NULL DEFAULT '{}';
    CREATE TABLE failures (
        account TEXT NOT NULL, company TEXT NOT NULL, source_id TEXT NOT NULL, ref TEXT NOT NULL,
        error TEXT NOT NULL, attempts INTEGER NOT NULL, at TEXT NOT NULL,
        PRIMARY KEY (account, company, source_id)
    );
    """,
    # 3: failures of listed items (ListingError) beside failed fetches; per-(document, target) claims
    """
    ALTER TABLE failures ADD COLUMN kind TEXT NOT NULL DEFAULT 'fetch';
    ALTER TABLE failures ADD COLUMN field TEXT;
    CREATE TABLE claims (
        document_id TEXT NOT NULL, target TEXT NOT NULL, owner TEXT NOT NULL, expires_at REAL NOT NULL,
        PRIMARY KEY (document_id, target)
    );
    """,
    # 4: how long a delivery or a fetch has been failing (first failure, attempts, runs)
    """
    ALTER TABLE deliveries ADD COLUMN first_failed_at TEXT;
    ALTER TABLE deliveries ADD COLUMN failed_attempts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE deliveries ADD COLUMN failed_runs INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE deliveries ADD COLUMN failed_run TEXT;
    UPDATE deliveries SET first_failed_at = at, failed_attempts = 1, failed_runs = 1 WHERE status = 'failed';
    CREATE INDEX deliveries_status ON deliveries (status, target);
    ALTER TABLE failures ADD COLUMN first_failed_at TEXT;
    UPDATE failures SET first_failed_at = at;
    -- set on the first failure only: a repeat is an upsert (an UPDATE), which leaves it alone
    CREATE TRIGGER failures_first_failed_at AFTER INSERT ON failures WHEN NEW.first_failed_at IS NULL
    BEGIN UPDATE failures SET first_failed_at = NEW.at WHERE rowid = NEW.rowid; END;
    """,
    # 5: the export options each delivery was decided under, so changing them re-checks it
    """
    ALTER TABLE deliveries ADD COLUMN export_options TEXT;
    """,
    # 6: past runs (the dashboard's History) and every settled delivery outcome (a document's history)
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT, started_at TEXT NOT NULL, finished_at TEXT NOT NULL,
        accounts TEXT NOT NULL, exit_code INTEGER NOT NULL, report TEXT NOT NULL
    );
    CREATE TABLE delivery_log (
        document_id TEXT NOT NULL, target TEXT NOT NULL, version TEXT NOT NULL, status TEXT NOT NULL,
        target_path TEXT, message TEXT, at TEXT NOT NULL
    );
    CREATE INDEX delivery_log_document ON delivery_log (document_id, at);
    -- triggers, so every writer of the ledger keeps the log; intents (pending, planned) are not outcomes
    CREATE TRIGGER delivery_log_insert AFTER INSERT ON deliveries WHEN NEW.status NOT IN ('pending', 'planned')
    BEGIN INSERT INTO delivery_log VALUES (NEW.document_id, NEW.target, NEW.version, NEW.status,
        NEW.target_path, NEW.message, NEW.at); END;
    CREATE TRIGGER delivery_log_update AFTER UPDATE OF status, version, at ON deliveries
    WHEN NEW.status NOT IN ('pending', 'planned')
    BEGIN INSERT INTO delivery_log VALUES (NEW.document_id, NEW.target, NEW.version, NEW.status,
        NEW.target_path, NEW.message, NEW.at); END;
    """,
    # 7: who holds each claim (the owner process), so a killed run's claims are taken over at once
    """
    ALTER TABLE claims ADD COLUMN owner_host TEXT;
    ALTER TABLE claims ADD COLUMN owner_pid INTEGER;
    ALTER TABLE claims ADD COLUMN owner_started TEXT;
    """,
    # 8 (limits): request budgets shared by every process using the state: a token bucket that may go
    # into debt and a Retry-After pause per (service, credential); in-flight slots are flocks, not rows
    """
    CREATE TABLE budgets (
        key TEXT PRIMARY KEY, tokens REAL NOT NULL, updated_at REAL NOT NULL, paused_until REAL NOT NULL
    );
    """,
    # 9 (schedules): a schedule set on the dashboard and each account's last
    # scheduled run, for `invoicesync serve`'s scheduler
    """
    CREATE TABLE schedules (
        account TEXT PRIMARY KEY, spec TEXT, last_started_at TEXT, last_finished_at TEXT, last_result TEXT
    );
    """,
    # 10 (docs100k): the Documents page over a big library: a lower-case search text (number, counterparty) instead
    # of parsing every document's JSON; the ledger's status index keyed by document too (with only
    # (status, target), checking one document's status scanned every ledger row of that status)
    """
    ALTER TABLE documents ADD COLUMN search TEXT NOT NULL DEFAULT '';
    UPDATE documents SET search = substr(invoicesync_lower(COALESCE(number, '') || char(10)
        || COALESCE(json_extract(body, '$.counterparty.name'), '')), 1, 500);
    DROP INDEX deliveries_status;
    CREATE INDEX deliveries_status ON deliveries (status, target, document_id);
    -- every column a Documents filter reads, keyed by id: a rare status's documents are checked, and
    -- a text search scans, without reading the documents' bodies
    CREATE INDEX documents_library ON documents (id, account, company, direction, kind, issue_date, deleted, search);
    """,
    # 11 (webhooks): the webhooks registered per (account, company), and the deliveries seen lately
    # (refusing a replay)
    """
    CREATE TABLE webhooks (
        account TEXT NOT NULL, company TEXT NOT NULL, url TEXT NOT NULL, ids TEXT NOT NULL,
        secret_keys TEXT NOT NULL, created_at TEXT NOT NULL,
        PRIMARY KEY (account, company)
    );
    CREATE TABLE webhook_seen (
        account TEXT NOT NULL, key TEXT NOT NULL, expires_at REAL NOT NULL,
        PRIMARY KEY (account, key)
    );
    CREATE INDEX webhook_seen_expiry ON webhook_seen (expires_at);
    """,
    # 12 (celery): what each task of a distributed run (`sync --executor celery`) reported, until its
    # coordinator takes it; the first answer of a task wins (a redelivered task may answer twice)
    """
    CREATE TABLE task_results (
        run TEXT NOT NULL, task TEXT NOT NULL, result TEXT NOT NULL, at TEXT NOT NULL,
        PRIMARY KEY (run, task)
    );
    """,
    # 13 (tokens): logins kept in the state when workers on several machines share it (shared_secrets),
    # encrypted with each machine's key: the key's id and the ciphertext, never the secret
    """
    CREATE TABLE secrets (
        ref TEXT PRIMARY KEY, key_id TEXT NOT NULL, value TEXT NOT NULL, updated_at TEXT NOT NULL
    );
    """,
    # 14 (backlog): what a run's backlog query (``undelivered``, once per target) reads, without the
    # documents' bodies: scanning the table for it read every body, so a re-sync with nothing to do
    # grew with the library (~40 ms per target at 10,000 documents, under the store's lock)
    """
    -- id first: led by deleted, the index tempted the planner for other queries' "deleted = 0"
    -- (a Documents page then read every live document and sorted them); the backlog names it
    CREATE INDEX documents_backlog ON documents (id, version, deleted);
    CREATE INDEX deliveries_backlog ON deliveries (document_id, target, version, status, export_options);
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


def _lower(text: str | None) -> str | None:
    return None if text is None else text.lower()


def _with_functions(db: sqlite3.Connection) -> sqlite3.Connection:
    # Python's lower(), as the store lower-cases search text when it writes it: SQLite's own lower()
    # knows ASCII only, so migration 10 fills the column with this one.
    db.create_function("invoicesync_lower", 1, _lower, deterministic=True)
    return db


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """Read a state this user may not write. ``mode=ro`` shares the WAL with a running writer; when
    SQLite cannot do that (no writable -shm file), ``immutable`` reads the file as it is."""
    if not path.is_file():
        raise sqlite3.OperationalError("unable to open database file")
    last: sqlite3.Error | None = None
    for query in ("mode=ro", "immutable=1"):
        db = sqlite3.connect(f"{path.absolute().as_uri()}?{query}", uri=True, check_same_thread=False,
                             isolation_level=None, timeout=30)
        db.row_factory = sqlite3.Row
        try:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return _with_functions(db)
        except sqlite3.OperationalError as exc:
            db.close()
            last = exc
    assert last is not None
    raise last


class SqliteStore(SqlStore):
    # SQLite would walk the table (bodies and all) newest first rather than scan the narrow index and
    # sort the few matches; a text search has to look at every document, so it is told to.
    TEXT_SEARCH_SCAN = "INDEXED BY documents_library"
    # The backlog's narrow indexes (migration 14): unhinted, SQLite reads the ledger through its primary
    # key and then each row, and may walk the table by rowid for the ORDER BY.
    BACKLOG_DOCUMENTS = "INDEXED BY documents_backlog"
    BACKLOG_DELIVERIES = "INDEXED BY deliveries_backlog"

    def __init__(self, path: Path | str, *, target_version: int = SCHEMA_VERSION, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._lock = threading.RLock()  # one connection, shared by the pipeline's threads
        self._run = uuid.uuid4().hex
        self._lock_run = None
        self._ledger: FileBudgetLedger | None = None
        try:
            self._db = self._connect()
            self.schema_version = self._migrate(target_version)
        except sqlite3.DatabaseError as exc:  # not a database, damaged, read-only, unreadable
            if hasattr(self, "_db"):
                self._db.close()
            from ..errors import ConfigError
            from ._problems import describe_state_error

            raise ConfigError(describe_state_error(self.path, exc)) from None

    def _connect(self) -> sqlite3.Connection:
        if self.read_only:
            return _connect_read_only(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives any process crash; a power cut may lose the last commits,
        # which the design tolerates: a lost cursor re-lists (the library deduplicates) and a lost
        # ledger row re-pushes (targets look up before writing). FULL would fsync every row.
        db.execute("PRAGMA synchronous=NORMAL")
        return _with_functions(db)

    # -- plumbing ----------------------------------------------------------------------------

    def _migrate(self, target: int) -> int:
        with self._lock:
            current = self._db.execute("PRAGMA user_version").fetchone()[0]
            if current > SCHEMA_VERSION:
                from ..errors import ConfigError

                raise ConfigError(
                    f"the state at {self.path} has schema {current}, newer than this invoicesync "
                    f"knows ({SCHEMA_VERSION}); upgrade invoicesync"
                )
            if self.read_only and current < target:
                from ..errors import ConfigError

                raise ConfigError(
                    f"the state at {self.path} has schema {current}, older than this invoicesync's "
                    f"({target}), and cannot be upgraded read-only; run `invoicesync sync` once as the "
                    f"owner of {self.path.parent}"
                )
            for version in range(current, target):
                self._db.executescript(f"BEGIN; {MIGRATIONS[version]}; PRAGMA user_version = {version + 1}; COMMIT;")
            return max(current, target)

    def _exec(self, sql: str, params: Params = ()) -> int:
        with self._lock:
            return self._db.execute(sql, params).rowcount

    def _one(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        with self._lock:
            row: sqlite3.Row | None = self._db.execute(sql, params).fetchone()
            return row

    def _all(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            if self._ledger is not None:
                self._ledger.close()
            self._db.close()

    def _insert_id(self, sql: str, params: Params = ()) -> int:
        with self._lock:
            return int(self._db.execute(sql, params).lastrowid or 0)

    def _atomically(self, statements: Sequence[tuple[str, Params]]) -> None:
        with self._lock:
            if self._db.in_transaction:  # inside ``transaction()``: the outer one commits them
                for sql, params in statements:
                    self._db.execute(sql, params)
                return
            self._db.execute("BEGIN")
            try:
                for sql, params in statements:
                    self._db.execute(sql, params)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction (one WAL commit) for every statement this thread runs in the block;
        the store's lock keeps the other threads' statements out of it until it ends. Nested: the
        outermost commits. An exception rolls it all back."""
        with self._lock:
            if self._db.in_transaction:
                yield
                return
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # (SQLite may have rolled back already: a full disk)
                    self._db.execute("ROLLBACK")
                raise

    def upsert_document(self, document: Document) -> UpsertOutcome:
        with self._lock:  # one connection, serialised: nothing can come between the read and the write
            row = self._db.execute("SELECT version, body FROM documents WHERE id = ?", (document.id,)).fetchone()
            values = self._document_row(document)
            if row and row["version"] == values[8]:
                if row["body"] != values[9]:
                    # The same version seen again, with newer source facts (a LastModified bumped by
                    # an edit of nothing booked): keep the latest; targets have nothing new to take.
                    self._db.execute("UPDATE documents SET body = ?, updated_at = ? WHERE id = ?",
                                     (values[9], values[11], document.id))
                return "unchanged"
            self._db.execute(self.UPSERT_DOCUMENT, values)
            return "updated" if row else "new"

    def _kv_update(self, account: str, key: str, fn: Callable[[Any], Any], default: Any) -> Any:
        # Under the store's lock (threads); SQLite's write lock is per statement, so another process
        # could come between the read and the write: one runner per home keeps that from happening.
        with self._lock:
            kv = self.kv(account)
            value = fn(kv.get(key, default))
            kv.set(key, value)
            return value

    # -- one runner per home -------------------------------------------------------------------

    def runner_lock(self, me: RunnerInfo, *, wait: float | None = 0.0,
                    should_stop: Callable[[], bool] = lambda: False) -> AbstractContextManager[None]:
        return self._holding(me, FileRunnerLock(self.path.with_name("runner.lock")).hold(
            me, wait=wait, should_stop=should_stop))

    # -- what several processes on this home share ---------------------------------------------

    def named_lock(self, name: str, *, timeout: float | None = 60.0) -> AbstractContextManager[None]:
        return FileNamedLocks(self.path.with_name("locks")).hold(name, timeout=timeout)

    def budget_ledger(self) -> FileBudgetLedger:
        with self._lock:
            if self._ledger is None:
                self._ledger = FileBudgetLedger(self, self.path.with_name("budgets"))
            return self._ledger
