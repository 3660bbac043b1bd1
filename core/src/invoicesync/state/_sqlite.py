"""The default state store: one SQLite file, versioned schema, forward-only migrations."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..models import Account, Delivery, DeliveryStatus, Document, DocumentRef
from ..processes import ProcessIdentity
from ._history import HistoryQueries
from ._library import LibraryQueries, document_where
from ._lock import FileRunnerLock, RunnerInfo, claim_is_stale
from ._store import DocumentFilter, Failure, UpsertOutcome

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
]
SCHEMA_VERSION = len(MIGRATIONS)


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
            return db
        except sqlite3.OperationalError as exc:
            db.close()
            last = exc
    assert last is not None
    raise last


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class SqliteStore(LibraryQueries, HistoryQueries):
    def __init__(self, path: Path | str, *, target_version: int = SCHEMA_VERSION, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._lock = threading.RLock()
        # One opening of the store is one run (one command): failures count runs by it, so the
        # in-run retries of one document count as one failing run.
        self._run = uuid.uuid4().hex
        #: The run (its claim-owner token) holding this home's runner lock through this store, if any.
        self._lock_run: str | None = None
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
        return db

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

    def _exec(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, params)

    def _one(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Row | None:
        with self._lock:
            row: sqlite3.Row | None = self._db.execute(sql, params).fetchone()
            return row

    def _all(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- accounts ----------------------------------------------------------------------------

    def save_account(self, account: Account) -> None:
        self._exec(
            """INSERT INTO accounts (name, plugin, direction, settings, companies, created_at)
               VALUES (?, ?, ?, ?, ?, ?)
               ON CONFLICT (name) DO UPDATE SET plugin = excluded.plugin, direction = excluded.direction,
                   settings = excluded.settings, companies = excluded.companies""",
            (
                account.name, account.plugin, account.direction.value, json.dumps(account.settings),
                json.dumps([c.model_dump() for c in account.companies]), _now(),
            ),
        )

    def _account(self, row: sqlite3.Row) -> Account:
        return Account(
            name=row["name"], plugin=row["plugin"], direction=row["direction"],
            settings=json.loads(row["settings"]), companies=json.loads(row["companies"]),
        )

    def get_account(self, name: str) -> Account | None:
        row = self._one("SELECT * FROM accounts WHERE name = ?", (name,))
        return self._account(row) if row else None

    def list_accounts(self) -> list[Account]:
        return [self._account(r) for r in self._all("SELECT * FROM accounts ORDER BY name")]

    def delete_account(self, name: str) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            for table in ("accounts WHERE name", "cursors WHERE account", "kv WHERE account",
                          "failures WHERE account", "deliveries WHERE target", "claims WHERE target"):
                self._db.execute(f"DELETE FROM {table} = ?", (name,))
            self._db.execute("COMMIT")

    def record_sync(self, name: str, result: dict[str, Any]) -> None:
        self._exec("UPDATE accounts SET last_sync = ? WHERE name = ?", (json.dumps({"at": _now(), **result}), name))

    def last_sync(self, name: str) -> dict[str, Any] | None:
        row = self._one("SELECT last_sync FROM accounts WHERE name = ?", (name,))
        return json.loads(row["last_sync"]) if row and row["last_sync"] else None

    # -- cursors -----------------------------------------------------------------------------

    def get_cursor(self, account: str, company: str) -> str | None:
        row = self._one("SELECT cursor FROM cursors WHERE account = ? AND company = ?", (account, company))
        return row["cursor"] if row else None

    def set_cursor(self, account: str, company: str, cursor: str | None) -> None:
        self._exec(
            """INSERT INTO cursors VALUES (?, ?, ?, ?)
               ON CONFLICT (account, company)
               DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at""",
            (account, company, cursor, _now()),
        )

    # -- documents ---------------------------------------------------------------------------

    def upsert_document(self, document: Document) -> UpsertOutcome:
        version = document.version
        with self._lock:
            row = self._db.execute("SELECT version FROM documents WHERE id = ?", (document.id,)).fetchone()
            if row and row["version"] == version:
                return "unchanged"
            now = _now()
            self._db.execute(
                """INSERT INTO documents (id, account, company, source_id, direction, kind, number, issue_date,
                       version, body, first_seen, updated_at, deleted)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (id) DO UPDATE SET direction = excluded.direction, kind = excluded.kind,
                       number = excluded.number, issue_date = excluded.issue_date, version = excluded.version,
                       body = excluded.body, updated_at = excluded.updated_at, deleted = excluded.deleted""",
                (
                    document.id, document.account, document.company.id, document.source_id,
                    document.direction.value, document.kind.value, document.number,
                    document.issue_date.isoformat() if document.issue_date else None, version,
                    document.model_dump_json(), now, now, int(document.deleted),
                ),
            )
            return "updated" if row else "new"

    def get_document(self, document_id: str) -> Document | None:
        row = self._one("SELECT body FROM documents WHERE id = ?", (document_id,))
        return Document.model_validate_json(row["body"]) if row else None

    def find_documents(self, filters: DocumentFilter) -> Iterator[Document]:
        where, params = document_where(filters)
        yield from self._keyset(f"SELECT rowid, body FROM documents d WHERE {where} AND rowid > ? "
                                "ORDER BY rowid LIMIT 100", params)

    def _keyset(self, sql: str, params: list[Any]) -> Iterator[Document]:
        # Page by rowid so a long export never holds the lock, or the whole library, at once.
        last = 0
        while True:
            rows = self._all(sql, (*params, last))
            if not rows:
                return
            for row in rows:
                yield Document.model_validate_json(row["body"])
            last = rows[-1]["rowid"]

    def mark_deleted(self, document_id: str) -> bool:
        document = self.get_document(document_id)
        if document is None or document.deleted:
            return False
        document.deleted = True
        # A new version too: the deletion is a change targets are offered (and settle) once.
        self._exec(
            "UPDATE documents SET deleted = 1, body = ?, version = ?, updated_at = ? WHERE id = ?",
            (document.model_dump_json(), document.version, _now(), document_id),
        )
        return True

    # -- deliveries --------------------------------------------------------------------------

    def _delivery(self, row: sqlite3.Row) -> Delivery:
        return Delivery(
            document_id=row["document_id"], target=row["target"], version=row["version"],
            status=DeliveryStatus(row["status"]), target_id=row["target_id"],
            target_path=row["target_path"], content_hash=row["content_hash"], message=row["message"],
            at=datetime.fromisoformat(row["at"]), extra=json.loads(row["extra"]),
            export_options=row["export_options"],
        )

    def get_delivery(self, document_id: str, target: str) -> Delivery | None:
        row = self._one("SELECT * FROM deliveries WHERE document_id = ? AND target = ?", (document_id, target))
        return self._delivery(row) if row else None

    def record_delivery(self, delivery: Delivery) -> None:
        at = (delivery.at or datetime.now(UTC)).isoformat(timespec="seconds")
        failed = delivery.status is DeliveryStatus.FAILED
        # A failure starts (or continues) a failing streak; an intent (pending, planned) leaves the
        # streak as it was; any settled outcome ends it.
        self._exec(
            """INSERT INTO deliveries (document_id, target, version, status, target_id, target_path,
                   content_hash, message, at, extra, first_failed_at, failed_attempts, failed_runs, failed_run,
                   export_options)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (document_id, target) DO UPDATE SET version = excluded.version,
                   status = excluded.status, target_id = COALESCE(excluded.target_id, target_id),
                   target_path = COALESCE(excluded.target_path, target_path),
                   content_hash = COALESCE(excluded.content_hash, content_hash),
                   message = excluded.message, at = excluded.at, extra = excluded.extra,
                   first_failed_at = CASE WHEN excluded.status = 'failed' THEN COALESCE(first_failed_at, excluded.at)
                       WHEN excluded.status IN ('pending', 'planned') THEN first_failed_at END,
                   failed_attempts = CASE WHEN excluded.status = 'failed' THEN failed_attempts + 1
                       WHEN excluded.status IN ('pending', 'planned') THEN failed_attempts ELSE 0 END,
                   failed_runs = CASE WHEN excluded.status = 'failed'
                           THEN failed_runs + (failed_run IS NOT excluded.failed_run)
                       WHEN excluded.status IN ('pending', 'planned') THEN failed_runs ELSE 0 END,
                   failed_run = CASE WHEN excluded.status = 'failed' THEN excluded.failed_run
                       WHEN excluded.status IN ('pending', 'planned') THEN failed_run END,
                   export_options = excluded.export_options""",
            (
                delivery.document_id, delivery.target, delivery.version, delivery.status.value,
                delivery.target_id, delivery.target_path, delivery.content_hash, delivery.message, at,
                json.dumps(delivery.extra), at if failed else None, int(failed), int(failed),
                self._run if failed else None, delivery.export_options,
            ),
        )

    def deliveries_for(self, document_id: str) -> list[Delivery]:
        rows = self._all("SELECT * FROM deliveries WHERE document_id = ? ORDER BY target", (document_id,))
        return [self._delivery(r) for r in rows]

    def undelivered(self, target: str, export_options: str | None = None) -> Iterator[Document]:
        """Documents this target has not taken in their current version (new, changed, failed, pending),
        or took under other export options than ``export_options`` (when given). A deleted document
        is offered only if this target has a record of it: its deletion is then still to be applied."""
        yield from self._keyset(
            """SELECT d.rowid, d.body FROM documents d
               LEFT JOIN deliveries l ON l.document_id = d.id AND l.target = ?
               WHERE ((d.deleted = 0 AND (l.status IS NULL OR l.version != d.version
                           OR l.status IN ('failed', 'pending', 'planned')
                           OR (? IS NOT NULL AND l.export_options IS NOT ?)))
                      OR (d.deleted = 1 AND l.status IS NOT NULL AND (l.version != d.version
                           OR l.status IN ('failed', 'pending', 'planned'))))
                 AND d.rowid > ? ORDER BY d.rowid LIMIT 100""",
            [target, export_options, export_options],
        )

    # -- failed fetches ----------------------------------------------------------------------

    def record_failure(self, account: str, company: str, ref: DocumentRef, error: str) -> None:
        self._record_failure(account, company, ref, error, kind="fetch", field=None)

    def record_listing_failure(self, account: str, company: str, key: str, field: str | None,
                               error: str) -> None:
        self._record_failure(account, company, DocumentRef(source_id=key), error, kind="listing", field=field)

    def _record_failure(self, account: str, company: str, ref: DocumentRef, error: str, *, kind: str,
                        field: str | None) -> None:
        self._exec(
            """INSERT INTO failures (account, company, source_id, ref, error, attempts, at, kind, field)
               VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?)
               ON CONFLICT (account, company, source_id) DO UPDATE SET ref = excluded.ref,
                   error = excluded.error, attempts = attempts + 1, at = excluded.at,
                   kind = excluded.kind, field = excluded.field""",
            (account, company, ref.source_id, ref.model_dump_json(), error, _now(), kind, field),
        )

    def clear_failure(self, account: str, company: str, source_id: str) -> None:
        self._exec("DELETE FROM failures WHERE account = ? AND company = ? AND source_id = ?",
                   (account, company, source_id))

    def clear_listing_failures(self, account: str, company: str, keep: Collection[str] = ()) -> None:
        """Forget the company's listing failures except ``keep`` (those its latest listing saw again)."""
        with self._lock:
            rows = self._db.execute("SELECT source_id FROM failures WHERE account = ? AND company = ? "
                                    "AND kind = 'listing'", (account, company)).fetchall()
            for row in rows:
                if row["source_id"] not in keep:
                    self.clear_failure(account, company, row["source_id"])

    def failures(self, account: str, company: str) -> list[Failure]:
        rows = self._all("SELECT * FROM failures WHERE account = ? AND company = ? ORDER BY at", (account, company))
        return [
            Failure(account, company, DocumentRef.model_validate_json(r["ref"]), r["error"], r["attempts"],
                    kind=r["kind"], field=r["field"])
            for r in rows
        ]

    # -- one runner per home, and per-(document, target) claims -------------------------------

    def runner_lock(self, me: RunnerInfo, *, wait: float | None = 0.0,
                    should_stop: Callable[[], bool] = lambda: False) -> AbstractContextManager[None]:
        return self._holding(me, FileRunnerLock(self.path.with_name("runner.lock")).hold(
            me, wait=wait, should_stop=should_stop))

    @contextmanager
    def _holding(self, me: RunnerInfo, lock: AbstractContextManager[None]) -> Iterator[None]:
        """Remember which run holds the runner lock: while it does, no other run of this home is live."""
        with lock:
            self._lock_run = me.token or None
            try:
                yield
            finally:
                self._lock_run = None

    def claim(self, document_id: str, target: str, owner: str, lease: float) -> bool:
        me = ProcessIdentity.current()
        for _ in range(3):  # a claim released between the two statements below is tried again
            now = time.time()
            # One statement, so SQLite's write lock makes it atomic across processes: a claim is
            # taken if it is free, already ours, or its owner let the lease run out.
            cursor = self._exec(
                """INSERT INTO claims (document_id, target, owner, expires_at, owner_host, owner_pid,
                       owner_started) VALUES (?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (document_id, target) DO UPDATE SET owner = excluded.owner,
                       expires_at = excluded.expires_at, owner_host = excluded.owner_host,
                       owner_pid = excluded.owner_pid, owner_started = excluded.owner_started
                   WHERE claims.owner = excluded.owner OR claims.expires_at < ?""",
                (document_id, target, owner, now + lease, me.host, me.pid, me.started, now),
            )
            if cursor.rowcount == 1:
                return True
            held = self._one("SELECT owner, owner_host, owner_pid, owner_started FROM claims "
                             "WHERE document_id = ? AND target = ?", (document_id, target))
            if held is None:
                continue
            if not claim_is_stale(held["owner"], held["owner_host"], held["owner_pid"], held["owner_started"],
                                  claimant=owner, lock_run=self._lock_run):
                return False
            # Take it from that owner only: if another run took it meanwhile, this matches nothing.
            cursor = self._exec(
                """UPDATE claims SET owner = ?, expires_at = ?, owner_host = ?, owner_pid = ?, owner_started = ?
                   WHERE document_id = ? AND target = ? AND owner = ?""",
                (owner, now + lease, me.host, me.pid, me.started, document_id, target, held["owner"]),
            )
            return cursor.rowcount == 1
        return False

    def release_claim(self, document_id: str, target: str, owner: str) -> None:
        self._exec("DELETE FROM claims WHERE document_id = ? AND target = ? AND owner = ?",
                   (document_id, target, owner))

    def renew_claims(self, owner: str, lease: float) -> None:
        self._exec("UPDATE claims SET expires_at = ? WHERE owner = ?", (time.time() + lease, owner))

    # -- plugin state ------------------------------------------------------------------------

    def kv(self, account: str) -> _AccountKV:
        return _AccountKV(self, account)


class _AccountKV:
    def __init__(self, store: SqliteStore, account: str) -> None:
        self._store = store
        self._account = account

    def get(self, key: str, default: Any = None) -> Any:
        row = self._store._one("SELECT value FROM kv WHERE account = ? AND key = ?", (self._account, key))
        return json.loads(row["value"]) if row else default

    def set(self, key: str, value: Any) -> None:
        self._store._exec(
            "INSERT INTO kv VALUES (?, ?, ?) ON CONFLICT (account, key) DO UPDATE SET value = excluded.value",
            (self._account, key, json.dumps(value)),
        )

    def delete(self, key: str) -> None:
        self._store._exec("DELETE FROM kv WHERE account = ? AND key = ?", (self._account, key))

    def update(self, key: str, fn: Callable[[Any], Any], default: Any = None) -> Any:
        """Read-modify-write under the store's lock (e.g. a folder-id cache shared by threads)."""
        with self._store._lock:
            value = fn(self.get(key, default))
            self.set(key, value)
            return value
