"""The state store interface. SQLite implements it; a PostgreSQL backend can implement it too,
and no plugin notices: plugins only ever see ``KeyValue`` and ``BlobStore``."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ..models import Account, Delivery, Document, DocumentRef
from ._lock import RunnerInfo

if TYPE_CHECKING:
    from ..http._shared_budget import BudgetLedger
    from ._history import LibraryCounts, LoggedDelivery, RunRecord
    from ._library import LibraryPage
    from ._schedules import ScheduleRecord
    from ._webhooks import WebhookRecord

UpsertOutcome = Literal["new", "updated", "unchanged"]


@dataclass
class DocumentFilter:
    account: str | None = None
    company: str | None = None
    direction: str | None = None
    kind: str | None = None
    since: date | None = None
    until: date | None = None
    include_deleted: bool = False
    #: Only documents deleted at the source (``documents --deleted``).
    only_deleted: bool = False
    #: Only documents with a delivery in this status at one of ``targets`` (``undelivered``: no
    #: delivery at one of them).
    status: str | None = None
    targets: tuple[str, ...] = ()


@dataclass
class FailingSince:
    """How long something has been failing: since the first failure of its current streak."""

    first_failed_at: datetime
    attempts: int  #: failed tries, in-run retries included
    runs: int  #: runs (commands) in which it failed


@dataclass
class LibraryEntry:
    """One document of the library with its ledger: the ``documents`` view, in one query."""

    document: Document
    deliveries: dict[str, Delivery]  #: by target
    failing: dict[str, FailingSince]  #: by target, for the failed deliveries


@dataclass
class PersistentFailure:
    """A delivery (``target``) or a fetch (``account/company``) that failed again and again."""

    where: str
    document: str  #: the document id (a delivery) or the source's id (a fetch)
    message: str
    since: FailingSince


@dataclass
class Failure:
    account: str
    company: str
    ref: DocumentRef
    error: str
    attempts: int
    #: ``fetch``: the ref is retried first next run; ``listing``: the item was unusable as listed
    #: (``ref.source_id`` is then the source's id, or a synthetic ``listing#N`` key when it had none)
    kind: str = "fetch"
    field: str | None = None


class KeyValue(Protocol):
    """A plugin's own small state for one account (folder ids, upload sessions): JSON values."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def set(self, key: str, value: Any) -> None: ...

    def delete(self, key: str) -> None: ...

    def update(self, key: str, fn: Callable[[Any], Any], default: Any = None) -> Any:
        """Read-modify-write atomically (e.g. a folder-id cache shared by threads); returns the new value."""
        ...


class StateStore(Protocol):
    schema_version: int

    # accounts
    def save_account(self, account: Account) -> None: ...
    def get_account(self, name: str) -> Account | None: ...
    def list_accounts(self) -> list[Account]: ...
    def delete_account(self, name: str) -> None: ...
    def record_sync(self, name: str, result: dict[str, Any]) -> None: ...
    def last_sync(self, name: str) -> dict[str, Any] | None: ...

    # cursors, one per (account, company)
    def get_cursor(self, account: str, company: str) -> str | None: ...
    def set_cursor(self, account: str, company: str, cursor: str | None) -> None: ...

    # the documents library
    def upsert_document(self, document: Document) -> UpsertOutcome: ...
    def get_document(self, document_id: str) -> Document | None: ...
    def get_documents(self, document_ids: list[str]) -> list[Document]: ...
    def find_documents(self, filters: DocumentFilter) -> Iterator[Document]: ...
    def library(self, filters: DocumentFilter) -> Iterator[LibraryEntry]:
        """Documents with their deliveries, filtered by status too, without a query per document."""
        ...
    def persistent_failures(self, min_runs: int = 2) -> list[PersistentFailure]: ...
    def mark_deleted(self, document_id: str) -> bool: ...

    # the delivery ledger, one row per (document, target account)
    def get_delivery(self, document_id: str, target: str) -> Delivery | None: ...
    def document_for_push(self, document_id: str, target: str, *, have_version: str | None = None
                          ) -> tuple[Document | None, Delivery | None]:
        """``get_document`` and ``get_delivery`` in one query; no document when the library
        holds ``have_version`` (the caller has it already)."""
        ...
    def transaction(self) -> AbstractContextManager[None]:
        """The block's writes in one transaction when the backend gains by it (SQLite), else as
        they come; an exception inside may undo them all."""
        ...
    def record_delivery(self, delivery: Delivery, *, release_claim_of: str | None = None) -> None:
        """Write ``delivery``; with ``release_claim_of`` (an owner), release that owner's claim on it
        in the same transaction."""
        ...
    def deliveries_for(self, document_id: str) -> list[Delivery]: ...
    def undelivered(self, target: str, export_options: str | None = None) -> Iterator[Document]: ...

    # fetches that failed, retried on the next run so the cursor can move past them safely
    def record_failure(self, account: str, company: str, ref: DocumentRef, error: str) -> None: ...
    def clear_failure(self, account: str, company: str, source_id: str) -> None: ...
    def failures(self, account: str, company: str) -> list[Failure]: ...
    # listed items the plugin could not use (ListingError); the cursor is held before them
    def record_listing_failure(self, account: str, company: str, key: str, field: str | None,
                               error: str) -> None: ...
    def clear_listing_failures(self, account: str, company: str, keep: Collection[str] = ()) -> None: ...

    # one runner per home; released by the OS when the holder dies (a PostgreSQL state would use
    # an advisory lock). Raises ``RunnerBusy`` if another runner keeps it past ``wait`` seconds.
    def runner_lock(self, me: RunnerInfo, *, wait: float | None = 0.0,
                    should_stop: Callable[[], bool] = ...) -> AbstractContextManager[None]: ...

    # a lock by name, shared by every process using this state (on any host, with PostgreSQL) and
    # freed when its holder dies; raises ``LockTimeout`` after ``timeout`` seconds (``None``: no limit).
    # OAuth refreshes take one, so two workers never spend one single-use refresh token.
    def named_lock(self, name: str, *, timeout: float | None = 60.0) -> AbstractContextManager[None]: ...

    # shared request budgets (in-flight slots, rate, Retry-After pauses) per (service, credential)
    def budget_ledger(self) -> BudgetLedger: ...

    # per-(document, target) claims: a push happens only under its claim, so two runners that get in
    # at once still push a document once. ``claim`` is an atomic insert-or-take-over-if-expired.
    def claim(self, document_id: str, target: str, owner: str, lease: float) -> bool: ...
    def release_claim(self, document_id: str, target: str, owner: str) -> None: ...
    def claimed_elsewhere(self, target: str, document_ids: Sequence[str]) -> set[str]: ...
    def renew_claims(self, owner: str, lease: float) -> None: ...

    # the answers of a distributed run's tasks (``sync --executor celery``), until its coordinator takes them
    def record_task_result(self, run: str, task: str, result: dict[str, Any]) -> bool: ...
    def take_task_results(self, run: str) -> dict[str, dict[str, Any]]: ...
    def forget_task_results(self, older_than: datetime) -> None: ...

    # past runs, every settled delivery outcome, and the dashboard's library pages and counts
    def record_run(self, started_at: datetime, finished_at: datetime, accounts: Sequence[str], exit_code: int,
                   report: dict[str, Any]) -> int: ...
    def runs(self, *, before: int | None = None, limit: int = 50) -> list[RunRecord]: ...
    def run(self, run_id: int) -> RunRecord | None: ...
    def delivery_log(self, document_id: str) -> list[LoggedDelivery]: ...
    def library_page(self, filters: DocumentFilter, *, text: str = "", before: int | None = None,
                     limit: int = 50, count_cap: int = ...) -> LibraryPage: ...
    def library_counts(self) -> LibraryCounts: ...

    # `invoicesync serve`'s schedules: one set on the dashboard, and each account's last scheduled run
    def schedules(self) -> dict[str, ScheduleRecord]: ...
    def set_schedule(self, account: str, spec: str | None) -> None: ...
    def record_scheduled_run(self, account: str, started_at: datetime | None, finished_at: datetime,
                             result: dict[str, Any]) -> None: ...

    def kv(self, account: str) -> KeyValue: ...

    # webhooks (the dashboard's receiver)
    def save_webhook(self, record: WebhookRecord, created_at: str) -> None: ...
    def webhooks(self, account: str | None = None) -> list[WebhookRecord]: ...
    def delete_webhook(self, account: str, company: str) -> None: ...
    def first_sighting(self, account: str, key: str, keep_seconds: float) -> bool: ...
    def close(self) -> None: ...
