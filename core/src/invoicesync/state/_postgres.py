"""A PostgreSQL state store (``state_url = "postgresql://…"``): the same logical schema and queries
as SQLite, so runners on several machines can share one state.

What PostgreSQL does its own way: a connection pool (the pipeline calls the store from many threads),
migrations under a ``schema_version`` table, a document upsert that says new/updated/unchanged in one
statement, claims timed by the server's clock (runners on several hosts), ``kv.update`` under a row
lock, and the runner lock as an advisory lock, which the server frees when its connection dies.
"""

from __future__ import annotations

import functools
import json
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from ..errors import ConfigError
from ..models import Document
from ._budgets import AdvisoryBudgetLedger
from ._library import Row
from ._lock import RunnerInfo
from ._named import AdvisoryNamedLocks
from ._pglock import AdvisoryRunnerLock
from ._sql import Params, SqlStore
from ._store import UpsertOutcome
from ._url import redacted

# Migration i takes the schema from version i to i+1, in step with SQLite's MIGRATIONS (the same
# logical tables and columns at each version; tests/test_state_schema.py compares them). SQLite's
# implicit ``rowid`` is an identity column here; REAL is DOUBLE PRECISION (epoch seconds need it).
# Append only; never edit a released one.
PG_MIGRATIONS: list[str] = [
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
        version TEXT NOT NULL, body TEXT NOT NULL, first_seen TEXT NOT NULL, updated_at TEXT NOT NULL,
        rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE
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
        document_id TEXT NOT NULL, target TEXT NOT NULL, owner TEXT NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (document_id, target)
    );
    """,
    # 4: how long a delivery or a fetch has been failing (the insert sets failures.first_failed_at;
    # SQLite's trigger only covered rows written by code older than that)
    """
    ALTER TABLE deliveries ADD COLUMN first_failed_at TEXT;
    ALTER TABLE deliveries ADD COLUMN failed_attempts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE deliveries ADD COLUMN failed_runs INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE deliveries ADD COLUMN failed_run TEXT;
    UPDATE deliveries SET first_failed_at = at, failed_attempts = 1, failed_runs = 1 WHERE status = 'failed';
    CREATE INDEX deliveries_status ON deliveries (status, target);
    ALTER TABLE failures ADD COLUMN first_failed_at TEXT;
    UPDATE failures SET first_failed_at = at;
    """,
    # 5: the export options each delivery was decided under, so changing them re-checks it
    """
    ALTER TABLE deliveries ADD COLUMN export_options TEXT;
    """,
    # 6: past runs (the dashboard's History) and every settled delivery outcome (a document's history);
    # the log's rowid orders outcomes recorded within one second, as SQLite's implicit one does
    """
    CREATE TABLE runs (
        id INTEGER GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, started_at TEXT NOT NULL,
        finished_at TEXT NOT NULL, accounts TEXT NOT NULL, exit_code INTEGER NOT NULL, report TEXT NOT NULL
    );
    CREATE TABLE delivery_log (
        document_id TEXT NOT NULL, target TEXT NOT NULL, version TEXT NOT NULL, status TEXT NOT NULL,
        target_path TEXT, message TEXT, at TEXT NOT NULL,
        rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE
    );
    CREATE INDEX delivery_log_document ON delivery_log (document_id, at);
    -- triggers, so every writer of the ledger keeps the log; intents (pending, planned) are not outcomes
    CREATE FUNCTION delivery_log_append() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO delivery_log (document_id, target, version, status, target_path, message, at)
        VALUES (NEW.document_id, NEW.target, NEW.version, NEW.status, NEW.target_path, NEW.message, NEW.at);
        RETURN NULL;
    END $$;
    CREATE TRIGGER delivery_log_insert AFTER INSERT ON deliveries FOR EACH ROW
    WHEN (NEW.status NOT IN ('pending', 'planned')) EXECUTE FUNCTION delivery_log_append();
    CREATE TRIGGER delivery_log_update AFTER UPDATE OF status, version, at ON deliveries FOR EACH ROW
    WHEN (NEW.status NOT IN ('pending', 'planned')) EXECUTE FUNCTION delivery_log_append();
    """,
    # 7: who holds each claim (the owner process), so a killed run's claims are taken over at once
    """
    ALTER TABLE claims ADD COLUMN owner_host TEXT;
    ALTER TABLE claims ADD COLUMN owner_pid INTEGER;
    ALTER TABLE claims ADD COLUMN owner_started TEXT;
    """,
    # 8 (limits): request budgets shared by every process using the state: a token bucket that may go
    # into debt and a Retry-After pause per (service, credential), timed by the server's clock;
    # in-flight slots are advisory locks, not rows
    """
    CREATE TABLE budgets (
        key TEXT PRIMARY KEY, tokens DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
        paused_until DOUBLE PRECISION NOT NULL
    );
    """,
    # 9 (schedules): a schedule set on the dashboard and each account's last
    # scheduled run, for `invoicesync serve`'s scheduler
    """
    CREATE TABLE schedules (
        account TEXT PRIMARY KEY, spec TEXT, last_started_at TEXT, last_finished_at TEXT, last_result TEXT
    );
    """,
    # 10 (docs100k): the Documents page over a big library: a lower-case search text (number, counterparty), and
    # the ledger's status index keyed by document too (lower() is Unicode-aware in a UTF-8 database)
    """
    ALTER TABLE documents ADD COLUMN search TEXT NOT NULL DEFAULT '';
    UPDATE documents SET search = left(lower(COALESCE(number, '') || chr(10)
        || COALESCE(CAST(body AS json) -> 'counterparty' ->> 'name', '')), 500);
    DROP INDEX deliveries_status;
    CREATE INDEX deliveries_status ON deliveries (status, target, document_id);
    CREATE INDEX documents_library ON documents (id, account, company, direction, kind, issue_date, deleted, search)
        INCLUDE (rowid);
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
        account TEXT NOT NULL, key TEXT NOT NULL, expires_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (account, key)
    );
    CREATE INDEX webhook_seen_expiry ON webhook_seen (expires_at);
    """,
    # 12 (celery): what each task of a distributed run reported, until its coordinator takes it
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
    # 14 (backlog): what a run's backlog query (``undelivered``) reads, for index-only scans that skip
    # the documents' bodies: documents in rowid order (its keyset); the ledger led by target, so a
    # hash join reads one target's rows (a nested loop's probe has both columns either way)
    """
    CREATE INDEX documents_backlog ON documents (rowid) INCLUDE (id, version, deleted);
    CREATE INDEX deliveries_backlog ON deliveries (target, document_id) INCLUDE (version, status, export_options);
    """,
]
PG_SCHEMA_VERSION = len(PG_MIGRATIONS)

#: The server's clock, in epoch seconds: claims compare leases on it, whichever host runs.
_SERVER_NOW = "CAST(extract(epoch FROM clock_timestamp()) AS DOUBLE PRECISION)"


@functools.lru_cache(maxsize=256)
def _pg(sql: str) -> str:
    """The shared queries' ``?`` placeholders as psycopg's ``%s``."""
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresStore(SqlStore):
    def __init__(self, url: str, *, target_version: int = PG_SCHEMA_VERSION, max_connections: int = 16) -> None:
        self.url = url
        self.where = redacted(url)
        self._run = uuid.uuid4().hex
        self._ledger: AdvisoryBudgetLedger | None = None
        self._ledger_lock = threading.Lock()
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=10) as db:
                self.schema_version = self._migrate(db, target_version)
        except psycopg.Error as exc:
            raise ConfigError(f"the PostgreSQL state at {self.where} cannot be used: "
                              f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
                              ) from None
        self._pool = ConnectionPool(url, min_size=1, max_size=max_connections, open=True,
                                    kwargs={"autocommit": True, "row_factory": dict_row})

    def _migrate(self, db: psycopg.Connection[Any], target: int) -> int:
        with db.transaction():
            # Two runners opening a new state at once: one migrates, the other then finds it done.
            db.execute("SELECT pg_advisory_xact_lock(hashtextextended('invoicesync migrate ' || current_schema(), 0))")
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = db.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                db.execute("INSERT INTO schema_version VALUES (0)")
            current = row[0] if row else 0
            if current > PG_SCHEMA_VERSION:
                raise ConfigError(f"the state at {self.where} has schema {current}, newer than this invoicesync "
                                  f"knows ({PG_SCHEMA_VERSION}); upgrade invoicesync")
            for version in range(current, target):
                db.execute(PG_MIGRATIONS[version].encode())
                db.execute("UPDATE schema_version SET version = %s", (version + 1,))
            return max(current, target)

    # -- plumbing ----------------------------------------------------------------------------

    def _exec(self, sql: str, params: Params = ()) -> int:
        with self._pool.connection() as db:
            return db.execute(_pg(sql), params).rowcount

    def _one(self, sql: str, params: Params = ()) -> Row | None:
        with self._pool.connection() as db:
            return db.execute(_pg(sql), params).fetchone()

    def _all(self, sql: str, params: Params = ()) -> list[Row]:
        with self._pool.connection() as db:
            return db.execute(_pg(sql), params).fetchall()

    def _insert_id(self, sql: str, params: Params = ()) -> int:
        row = self._one(sql + " RETURNING id", params)
        assert row is not None
        return int(row["id"])

    def _atomically(self, statements: Sequence[tuple[str, Params]]) -> None:
        with self._pool.connection() as db, db.transaction():
            for sql, params in statements:
                db.execute(_pg(sql), params)

    def _record_and_release(self, record: tuple[str, Params], release: tuple[str, Params]) -> None:
        # One statement, so one round trip and one commit: a data-modifying WITH runs once, in the
        # statement's transaction, whether or not the INSERT reads it.
        self._exec(f"WITH released AS ({release[0]}) {record[0]}", (*release[1], *record[1]))

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()
        self._pool.close()

    def load_empty(self, tables: dict[str, Iterator[tuple[list[str], list[Params]]]]) -> dict[str, int]:
        """Fill this state, which must hold nothing yet, with ``tables``' rows (batches of columns
        and rows), in one transaction: a copy that fails half-way leaves the state empty."""
        counts: dict[str, int] = {}
        with self._pool.connection() as db, db.transaction():
            # Nobody may write in between the check and the copy.
            db.execute(f"LOCK TABLE {', '.join(tables)} IN SHARE ROW EXCLUSIVE MODE")
            held = [t for t in tables if db.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone()]
            if held:
                raise ConfigError(f"the PostgreSQL state at {self.where} is not empty (it has {', '.join(held)}); "
                                  f"migrate only into a new database or schema")
            for table, batches in tables.items():
                if table == "delivery_log":  # the home's log replaces what the ledger's trigger just wrote
                    db.execute("DELETE FROM delivery_log")
                counts[table] = 0
                for columns, rows in batches:
                    marks = ", ".join(["%s"] * len(columns))
                    with db.cursor() as cursor:
                        cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)
                    counts[table] += len(rows)
            # runs keep their ids (pages link to them): the next run numbers on after the last
            db.execute("SELECT setval(pg_get_serial_sequence('runs', 'id'), "
                       "(SELECT COALESCE(max(id), 0) + 1 FROM runs), false)")
        return counts

    # -- what PostgreSQL makes atomic its own way ---------------------------------------------

    def upsert_document(self, document: Document) -> UpsertOutcome:
        # One statement, so concurrent runners agree: no row back means the version was already
        # there; xmax = 0 marks a row this statement inserted rather than updated.
        # The same version with a different body (newer source facts, such as a LastModified bumped
        # by an edit of nothing booked) is kept too, and is still "unchanged": targets take nothing new.
        values = self._document_row(document)
        row = self._one("WITH earlier AS (SELECT version FROM documents WHERE id = ?) " + self.UPSERT_DOCUMENT
                        + " WHERE documents.version != excluded.version OR documents.body != excluded.body"
                        " RETURNING (xmax = 0) AS inserted, (SELECT version FROM earlier) AS earlier",
                        (document.id, *values))
        if row is None or (not row["inserted"] and row["earlier"] == values[8]):
            return "unchanged"
        return "new" if row["inserted"] else "updated"

    def _claim_now(self) -> float:
        # The server's clock: runners on several hosts compare leases on one clock.
        row = self._one(f"SELECT {_SERVER_NOW} AS now")
        assert row is not None
        return float(row["now"])

    def _claim_clock(self) -> tuple[str, tuple[()]]:
        return _SERVER_NOW, ()

    def _kv_update(self, account: str, key: str, fn: Callable[[Any], Any], default: Any) -> Any:
        with self._pool.connection() as db, db.transaction():
            # Insert a placeholder if the key is missing, so there is always a row to lock; a rollback
            # (fn raised) takes the placeholder away again.
            inserted = db.execute("INSERT INTO kv (account, key, value) VALUES (%s, %s, 'null') "
                                  "ON CONFLICT (account, key) DO NOTHING RETURNING 1", (account, key)).fetchone()
            row: Row = db.execute("SELECT value FROM kv WHERE account = %s AND key = %s FOR UPDATE",
                             (account, key)).fetchone()
            assert row is not None
            value = fn(default if inserted else json.loads(row["value"]))
            db.execute("UPDATE kv SET value = %s WHERE account = %s AND key = %s",
                       (json.dumps(value), account, key))
            return value

    def runner_lock(self, me: RunnerInfo, *, wait: float | None = 0.0,
                    should_stop: Callable[[], bool] = lambda: False) -> AbstractContextManager[None]:
        return self._holding(me, AdvisoryRunnerLock(self.url).hold(me, wait=wait, should_stop=should_stop))

    # -- what several processes (on any host) share -----------------------------------------------

    def named_lock(self, name: str, *, timeout: float | None = 60.0) -> AbstractContextManager[None]:
        return AdvisoryNamedLocks(self.url).hold(name, timeout=timeout)

    def budget_ledger(self) -> AdvisoryBudgetLedger:
        with self._ledger_lock:
            if self._ledger is None:
                self._ledger = AdvisoryBudgetLedger(self.url)
            return self._ledger
