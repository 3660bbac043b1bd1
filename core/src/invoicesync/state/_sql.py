"""The state store's queries, shared by the SQLite and PostgreSQL backends.

Both hold one logical schema (tables and columns kept in step by a test), so every query here is
written once, in SQL both speak (``?`` placeholders; PostgreSQL's plumbing turns them into ``%s``).
A backend supplies the plumbing (``_exec``, ``_one``, ``_all``, ``_atomically``) and whatever must
be atomic in its own way: the runner lock, ``upsert_document``, and the plugins' ``kv.update``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from typing import Any

from ..models import Account, Delivery, DeliveryStatus, Document, DocumentRef
from ..processes import ProcessIdentity
from ._history import HistoryQueries
from ._library import LibraryQueries, Row, search_text
from ._lock import RunnerInfo, claim_is_stale
from ._schedules import ScheduleQueries
from ._store import Failure, UpsertOutcome
from ._webhooks import WebhookQueries

Params = tuple[Any, ...]

#: The tables of the logical schema that hold state (not claims, which live only as long as a run),
#: in an order that copies them safely: the ledger's trigger writes the log, which comes after it.
STATE_TABLES = ("accounts", "cursors", "documents", "deliveries", "delivery_log", "failures", "kv", "runs",
                "schedules", "webhooks")


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@contextmanager
def _holding(store: SqlStore, me: RunnerInfo, lock: AbstractContextManager[None]) -> Iterator[None]:
    with lock:
        store._lock_run = me.token or None
        try:
            yield
        finally:
            store._lock_run = None


class SqlStore(LibraryQueries, HistoryQueries, ScheduleQueries, WebhookQueries):
    #: One opening of the store is one run (one command): failures count runs by it, so the
    #: in-run retries of one document count as one failing run.
    _run: str
    #: The run (its claim-owner token) holding the runner lock through this store, if any.
    _lock_run: str | None = None

    # -- plumbing, per backend ----------------------------------------------------------------

    def _exec(self, sql: str, params: Params = ()) -> int:
        """Run one statement; the number of rows it changed."""
        raise NotImplementedError

    def _one(self, sql: str, params: Params = ()) -> Row | None:
        raise NotImplementedError

    def _all(self, sql: str, params: Params = ()) -> list[Row]:
        raise NotImplementedError

    def _atomically(self, statements: Sequence[tuple[str, Params]]) -> None:
        """Run ``statements`` in one transaction."""
        raise NotImplementedError

    def _insert_id(self, sql: str, params: Params = ()) -> int:
        raise NotImplementedError

    def transaction(self) -> AbstractContextManager[None]:
        """Group the writes of a block into one transaction where that saves commits (SQLite: one
        WAL commit instead of one per statement); here each statement stays its own."""
        return nullcontext()

    def _kv_update(self, account: str, key: str, fn: Callable[[Any], Any], default: Any) -> Any:
        raise NotImplementedError

    def _claim_now(self) -> float:
        """The clock leases are measured on."""
        return time.time()

    def _claim_clock(self) -> tuple[str, Params]:
        """The lease clock inside a statement: an SQL expression and its parameters. Here a value
        read from ``_claim_now``; a store whose server keeps the clock reads it in the statement
        itself, saving a round trip per claim."""
        return "?", (self._claim_now(),)

    # -- accounts ----------------------------------------------------------------------------

    def save_account(self, account: Account) -> None:
        self._exec(
            """INSERT INTO accounts (name, plugin, direction, settings, companies, created_at)
               VALUES (?, ?, ?, ?, ?, ?)
               ON CONFLICT (name) DO UPDATE SET plugin = excluded.plugin, direction = excluded.direction,
                   settings = excluded.settings, companies = excluded.companies""",
            (
                account.name, account.plugin, account.direction.value, json.dumps(account.settings),
                json.dumps([c.model_dump() for c in account.companies]), now_text(),
            ),
        )

    def _account(self, row: Row) -> Account:
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
        self._atomically([
            (f"DELETE FROM {table} = ?", (name,))
            for table in ("accounts WHERE name", "cursors WHERE account", "kv WHERE account",
                          "failures WHERE account", "deliveries WHERE target", "claims WHERE target",
                          "schedules WHERE account", "webhooks WHERE account", "webhook_seen WHERE account")
        ])

    def record_sync(self, name: str, result: dict[str, Any]) -> None:
        self._exec("UPDATE accounts SET last_sync = ? WHERE name = ?",
                   (json.dumps({"at": now_text(), **result}), name))

    def last_sync(self, name: str) -> dict[str, Any] | None:
        row = self._one("SELECT last_sync FROM accounts WHERE name = ?", (name,))
        return json.loads(row["last_sync"]) if row and row["last_sync"] else None

    # -- cursors -----------------------------------------------------------------------------

    def get_cursor(self, account: str, company: str) -> str | None:
        row = self._one("SELECT cursor FROM cursors WHERE account = ? AND company = ?", (account, company))
        return row["cursor"] if row else None

    def set_cursor(self, account: str, company: str, cursor: str | None) -> None:
        self._exec(
            """INSERT INTO cursors (account, company, cursor, updated_at) VALUES (?, ?, ?, ?)
               ON CONFLICT (account, company)
               DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at""",
            (account, company, cursor, now_text()),
        )

    # -- documents ---------------------------------------------------------------------------

    UPSERT_DOCUMENT = """INSERT INTO documents (id, account, company, source_id, direction, kind, number,
               issue_date, version, body, first_seen, updated_at, deleted, search)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (id) DO UPDATE SET direction = excluded.direction, kind = excluded.kind,
               number = excluded.number, issue_date = excluded.issue_date, version = excluded.version,
               body = excluded.body, updated_at = excluded.updated_at, deleted = excluded.deleted,
               search = excluded.search"""

    @staticmethod
    def _document_row(document: Document) -> Params:
        now = now_text()
        return (
            document.id, document.account, document.company.id, document.source_id,
            document.direction.value, document.kind.value, document.number,
            document.issue_date.isoformat() if document.issue_date else None, document.version,
            document.model_dump_json(), now, now, int(document.deleted), search_text(document),
        )

    def upsert_document(self, document: Document) -> UpsertOutcome:
        raise NotImplementedError

    def get_document(self, document_id: str) -> Document | None:
        row = self._one("SELECT body FROM documents WHERE id = ?", (document_id,))
        return Document.model_validate_json(row["body"]) if row else None

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
            (document.model_dump_json(), document.version, now_text(), document_id),
        )
        return True

    # -- deliveries --------------------------------------------------------------------------

    def _delivery(self, row: Row) -> Delivery:
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

    def document_for_push(self, document_id: str, target: str, *, have_version: str | None = None
                          ) -> tuple[Document | None, Delivery | None]:
        """The library's document and its delivery at ``target``, in one query (a push reads both).
        The document is ``None`` when the library lacks it, or holds ``have_version`` (the caller's
        copy): parsing the stored body again would only rebuild what the caller has."""
        row = self._one(
            """SELECT d.version AS stored_version, CASE WHEN d.version = ? THEN NULL ELSE d.body END AS body,
                   l.document_id, l.target, l.version, l.status, l.target_id, l.target_path,
                   l.content_hash, l.message, l.at, l.extra, l.export_options
               FROM documents d LEFT JOIN deliveries l ON l.document_id = d.id AND l.target = ?
               WHERE d.id = ?""", (have_version, target, document_id))
        if row is None:  # not in the library (yet): the ledger may still know it
            return None, self.get_delivery(document_id, target)
        document = None if row["body"] is None else Document.model_validate_json(row["body"])
        return document, (self._delivery(row) if row["document_id"] is not None else None)

    def record_delivery(self, delivery: Delivery, *, release_claim_of: str | None = None) -> None:
        statement = self._delivery_statement(delivery)
        if release_claim_of is None:
            self._exec(*statement)
            return
        # The outcome and the end of its claim in one transaction: the claim goes only with it.
        self._record_and_release(statement, self._release_statement(delivery.document_id, delivery.target,
                                                                    release_claim_of))

    def _record_and_release(self, record: tuple[str, Params], release: tuple[str, Params]) -> None:
        """Run a ledger write and a claim's release in one transaction."""
        self._atomically([record, release])

    def _delivery_statement(self, delivery: Delivery) -> tuple[str, Params]:
        at = (delivery.at or datetime.now(UTC)).isoformat(timespec="seconds")
        failed = delivery.status is DeliveryStatus.FAILED
        # A failure starts (or continues) a failing streak; an intent (pending, planned) leaves the
        # streak as it was; any settled outcome ends it.
        return (
            """INSERT INTO deliveries (document_id, target, version, status, target_id, target_path,
                   content_hash, message, at, extra, first_failed_at, failed_attempts, failed_runs, failed_run,
                   export_options)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (document_id, target) DO UPDATE SET version = excluded.version,
                   status = excluded.status, target_id = COALESCE(excluded.target_id, deliveries.target_id),
                   target_path = COALESCE(excluded.target_path, deliveries.target_path),
                   content_hash = COALESCE(excluded.content_hash, deliveries.content_hash),
                   message = excluded.message, at = excluded.at, extra = excluded.extra,
                   first_failed_at = CASE WHEN excluded.status = 'failed'
                           THEN COALESCE(deliveries.first_failed_at, excluded.at)
                       WHEN excluded.status IN ('pending', 'planned') THEN deliveries.first_failed_at END,
                   failed_attempts = CASE WHEN excluded.status = 'failed' THEN deliveries.failed_attempts + 1
                       WHEN excluded.status IN ('pending', 'planned') THEN deliveries.failed_attempts ELSE 0 END,
                   failed_runs = CASE WHEN excluded.status = 'failed' THEN deliveries.failed_runs
                           + CASE WHEN deliveries.failed_run = excluded.failed_run THEN 0 ELSE 1 END
                       WHEN excluded.status IN ('pending', 'planned') THEN deliveries.failed_runs ELSE 0 END,
                   failed_run = CASE WHEN excluded.status = 'failed' THEN excluded.failed_run
                       WHEN excluded.status IN ('pending', 'planned') THEN deliveries.failed_run END,
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
                           OR (CAST(? AS TEXT) IS NOT NULL
                               AND (l.export_options IS NULL OR l.export_options != CAST(? AS TEXT)))))
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
        now = now_text()
        # first_failed_at is set by the first failure only: a repeat is the UPDATE, which keeps it.
        self._exec(
            """INSERT INTO failures (account, company, source_id, ref, error, attempts, at, kind, field,
                   first_failed_at)
               VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?, ?)
               ON CONFLICT (account, company, source_id) DO UPDATE SET ref = excluded.ref,
                   error = excluded.error, attempts = failures.attempts + 1, at = excluded.at,
                   kind = excluded.kind, field = excluded.field""",
            (account, company, ref.source_id, ref.model_dump_json(), error, now, kind, field, now),
        )

    def clear_failure(self, account: str, company: str, source_id: str) -> None:
        self._exec("DELETE FROM failures WHERE account = ? AND company = ? AND source_id = ?",
                   (account, company, source_id))

    def clear_listing_failures(self, account: str, company: str, keep: Collection[str] = ()) -> None:
        """Forget the company's listing failures except ``keep`` (those its latest listing saw again)."""
        rows = self._all("SELECT source_id FROM failures WHERE account = ? AND company = ? AND kind = 'listing'",
                         (account, company))
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

    # -- per-(document, target) claims ---------------------------------------------------------

    def _holding(self, me: RunnerInfo, lock: AbstractContextManager[None]) -> AbstractContextManager[None]:
        """Remember which run holds the runner lock: while it does, no other run of this state is live."""
        return _holding(self, me, lock)

    def claim(self, document_id: str, target: str, owner: str, lease: float) -> bool:
        me = ProcessIdentity.current()
        for _ in range(3):  # a claim released between the two statements below is tried again
            now, at = self._claim_clock()
            # One statement, so the database makes it atomic across processes: a claim is taken if
            # it is free, already ours, or its owner let the lease run out.
            changed = self._exec(
                f"""INSERT INTO claims (document_id, target, owner, expires_at, owner_host, owner_pid,
                       owner_started) VALUES (?, ?, ?, {now} + ?, ?, ?, ?)
                   ON CONFLICT (document_id, target) DO UPDATE SET owner = excluded.owner,
                       expires_at = excluded.expires_at, owner_host = excluded.owner_host,
                       owner_pid = excluded.owner_pid, owner_started = excluded.owner_started
                   WHERE claims.owner = excluded.owner OR claims.expires_at < {now}""",
                (document_id, target, owner, *at, lease, me.host, me.pid, me.started, *at),
            )
            if changed == 1:
                return True
            held = self._one("SELECT owner, owner_host, owner_pid, owner_started FROM claims "
                             "WHERE document_id = ? AND target = ?", (document_id, target))
            if held is None:
                continue
            if not claim_is_stale(held["owner"], held["owner_host"], held["owner_pid"], held["owner_started"],
                                  claimant=owner, lock_run=self._lock_run):
                return False
            # Take it from that owner only: if another run took it meanwhile, this matches nothing.
            return self._exec(
                f"""UPDATE claims SET owner = ?, expires_at = {now} + ?, owner_host = ?, owner_pid = ?,
                       owner_started = ? WHERE document_id = ? AND target = ? AND owner = ?""",
                (owner, *at, lease, me.host, me.pid, me.started, document_id, target, held["owner"]),
            ) == 1
        return False

    def claimed_elsewhere(self, target: str, document_ids: Sequence[str]) -> set[str]:
        """Which of ``document_ids`` another run is pushing to ``target`` right now: claimed, the
        lease not run out, and the owner not known to be gone."""
        if not document_ids:
            return set()
        marks = ", ".join("?" * len(document_ids))
        now, at = self._claim_clock()
        rows = self._all(f"SELECT document_id, owner, owner_host, owner_pid, owner_started FROM claims "
                         f"WHERE target = ? AND expires_at >= {now} AND document_id IN ({marks})",
                         (target, *at, *document_ids))
        return {row["document_id"] for row in rows
                if not claim_is_stale(row["owner"], row["owner_host"], row["owner_pid"], row["owner_started"],
                                      claimant="", lock_run=None)}

    def release_claim(self, document_id: str, target: str, owner: str) -> None:
        self._exec(*self._release_statement(document_id, target, owner))

    @staticmethod
    def _release_statement(document_id: str, target: str, owner: str) -> tuple[str, Params]:
        return "DELETE FROM claims WHERE document_id = ? AND target = ? AND owner = ?", (document_id, target, owner)

    def renew_claims(self, owner: str, lease: float) -> None:
        now, at = self._claim_clock()
        self._exec(f"UPDATE claims SET expires_at = {now} + ? WHERE owner = ?", (*at, lease, owner))

    # -- the answers of a distributed run's tasks ------------------------------------------------

    def record_task_result(self, run: str, task: str, result: dict[str, Any]) -> bool:
        """Keep what ``task`` of ``run`` reported; False if it had answered already (the first wins)."""
        return self._exec("INSERT INTO task_results (run, task, result, at) VALUES (?, ?, ?, ?) "
                          "ON CONFLICT (run, task) DO NOTHING", (run, task, json.dumps(result), now_text())) == 1

    def take_task_results(self, run: str) -> dict[str, dict[str, Any]]:
        """The answers of ``run``'s tasks not taken yet, by task id; taking removes them."""
        rows = self._all("DELETE FROM task_results WHERE run = ? RETURNING task, result", (run,))
        return {row["task"]: json.loads(row["result"]) for row in rows}

    def forget_task_results(self, older_than: datetime) -> None:
        """Drop answers nobody took (a coordinator that stopped, a task that answered twice)."""
        self._exec("DELETE FROM task_results WHERE at < ?", (older_than.isoformat(timespec="seconds"),))

    # -- plugin state ------------------------------------------------------------------------

    def kv(self, account: str) -> AccountKV:
        return AccountKV(self, account)


class AccountKV:
    def __init__(self, store: SqlStore, account: str) -> None:
        self._store = store
        self._account = account

    def get(self, key: str, default: Any = None) -> Any:
        row = self._store._one("SELECT value FROM kv WHERE account = ? AND key = ?", (self._account, key))
        return json.loads(row["value"]) if row else default

    def set(self, key: str, value: Any) -> None:
        self._store._exec(
            "INSERT INTO kv (account, key, value) VALUES (?, ?, ?) "
            "ON CONFLICT (account, key) DO UPDATE SET value = excluded.value",
            (self._account, key, json.dumps(value)),
        )

    def delete(self, key: str) -> None:
        self._store._exec("DELETE FROM kv WHERE account = ? AND key = ?", (self._account, key))

    def update(self, key: str, fn: Callable[[Any], Any], default: Any = None) -> Any:
        """Read-modify-write atomically (e.g. a folder-id cache shared by threads, or by runners)."""
        return self._store._kv_update(self._account, key, fn, default)
