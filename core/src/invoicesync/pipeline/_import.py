"""The import stage: list a company's changes, fetch documents concurrently, store them, move the cursor.

The cursor of a checkpoint is stored only once every item listed before it is settled: stored in
the library (and handed to the targets), or recorded as a failure (retried first on the next run).
An item whose failure cannot even be recorded, a listed item the plugin could not use
(``ListingError``) and an item a stop left unfetched are never settled, so the cursor stays before
them and the next run lists them again. A crash at any point re-lists from the last safe cursor, and
nothing is lost; the library's id+version check makes the re-listed documents "unchanged", so
nothing is imported twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from ..context import Context
from ..errors import InvoiceSyncError
from ..models import Account, Checkpoint, Company, Deletion, Document, DocumentRef, ListingError
from ..plugins import Plugins
from ..state import StateStore
from ._control import RunControl, describe
from ._report import Progress, SyncReport

log = logging.getLogger("invoicesync.sync")


class CursorTracker:
    """Stores a checkpoint's cursor once all items before it have settled, in order."""

    def __init__(self, save: Callable[[str], None]) -> None:
        self._save = save
        self._lock = threading.Lock()
        self._next = 0
        self._settled: set[int] = set()
        self._lowest_open = 0
        self._checkpoints: list[tuple[int, str]] = []  # (items before it, cursor)

    def add(self) -> int:
        with self._lock:
            seq = self._next
            self._next += 1
            return seq

    def checkpoint(self, cursor: str) -> None:
        with self._lock:
            self._checkpoints.append((self._next, cursor))
            self._flush()

    def settle(self, seq: int) -> None:
        with self._lock:
            self._settled.add(seq)
            self._flush()

    def _flush(self) -> None:
        while self._lowest_open in self._settled:
            self._settled.discard(self._lowest_open)
            self._lowest_open += 1
        latest = None
        while self._checkpoints and self._checkpoints[0][0] <= self._lowest_open:
            latest = self._checkpoints.pop(0)[1]
        if latest is not None:
            self._save(latest)


class Slots:
    """The fetches a listing may have in flight (a bounded semaphore), whose waiter is woken once
    ``refill`` slots are free (or all of them), not at every fetch that ends: the lister then
    submits a few at once, one wake-up for several documents. ``refill`` at most ``total`` minus
    the fetch threads, so they never run dry meanwhile."""

    def __init__(self, total: int, *, refill: int) -> None:
        self.total = total
        self._refill = max(1, min(refill, total))
        self._free = total
        self._cond = threading.Condition(threading.Lock())

    def acquire(self) -> None:
        with self._cond:
            while self._free == 0:
                self._cond.wait()
            self._free -= 1

    def release(self) -> None:
        with self._cond:
            if self._free >= self.total:
                raise ValueError("Slots released too many times")
            self._free += 1
            if self._free == self._refill or self._free == self.total:
                self._cond.notify_all()

    def wait_all(self) -> None:
        """Until every slot is free again."""
        with self._cond:
            while self._free < self.total:
                self._cond.wait()


class ImportStage:
    def __init__(
        self,
        plugins: Plugins,
        state: StateStore,
        report: SyncReport,
        progress: Progress,
        *,
        dry_run: bool,
        full: bool,
        deliver: Callable[[Document], None],
        control: RunControl | None = None,
        record_result: bool = True,
    ) -> None:
        self.plugins = plugins
        self.state = state
        self.report = report
        self.progress = progress
        self.dry_run = dry_run
        self.full = full
        self.deliver = deliver
        self.control = control or RunControl()
        #: Whether ``run`` records the account's result (``accounts``); a Celery task imports one
        #: company of it, and its coordinator records the whole run's result instead.
        self.record_result = record_result

    def run(self, account: Account, ctx: Context) -> None:
        concurrency = self.plugins.get(account.plugin).info.concurrency
        if not account.companies:
            self.report.problem(account.name, None, "no companies chosen; run `invoicesync connect` again")
            return
        with ThreadPoolExecutor(concurrency, thread_name_prefix=f"fetch-{account.name}") as pool:
            self._list_companies(account, ctx, pool, concurrency)
        if self.record_result and not self.dry_run:
            try:
                self.state.record_sync(account.name, self.report.account_result(account.name))
            except Exception as exc:  # noqa: BLE001 - only the `accounts` overview misses it
                self.report.problem(account.name, None, f"could not record the sync result: {describe(exc)}")
                self.control.check_fatal(exc)

    def _list_companies(self, account: Account, ctx: Context, pool: ThreadPoolExecutor, concurrency: int) -> None:
        # The companies are listed at once (each listing is a chain of pages, one at a time), and
        # share one fetch pool; half the plugin's concurrency at most, so listings never crowd it out.
        listers = max(1, min(len(account.companies), concurrency // 2))
        with ThreadPoolExecutor(listers, thread_name_prefix=f"list-{account.name}") as listing:
            for company_done in [listing.submit(self._company_guarded, account, company, ctx, pool, concurrency)
                                 for company in account.companies]:
                company_done.result()

    def _company_guarded(self, account: Account, company: Company, ctx: Context, pool: ThreadPoolExecutor,
                         concurrency: int) -> None:
        if self.control.stopping:
            return
        try:
            self._company(account, company, ctx, pool, concurrency)
        except Exception as exc:  # noqa: BLE001 - one unreachable company must not stop the others
            self.report.problem(f"{account.name}/{company.name or company.id}", None,
                                f"company {company.name} ({company.id}): {describe(exc)}")
            self.control.check_fatal(exc)
        except BaseException as exc:  # noqa: BLE001 - SystemExit and the like from a plugin: end the run cleanly
            self.control.abort(f"listing {account.name}/{company.name or company.id} stopped the run: "
                               f"{describe(exc)}")

    def _company(self, account: Account, company: Company, ctx: Context, pool: ThreadPoolExecutor,
                 concurrency: int) -> None:
        where = f"{account.name}/{company.name or company.id}"
        task = self.progress.add_task(f"import {where}", total=0)
        cursor = None if self.full else self.state.get_cursor(account.name, company.id)
        tracker = CursorTracker(lambda c: self._save_cursor(account, company, c, where))
        # Bound what is in flight, so listing a million documents never holds a million refs.
        slots = Slots(concurrency * 4, refill=concurrency * 2)
        listed = 0
        unusable: list[str] = []  # keys of this listing's ListingErrors
        # The last fetch of each document still under way. An order edited while it is listed comes
        # again later in the same listing; its second fetch starts only once the first is stored, so
        # an older answer can never be stored over a newer one (the cursor then moves past both).
        latest: dict[str, Future[bool]] = {}
        latest_lock = threading.Lock()
        # The source ids with a failure row (read below, or recorded by this listing): a fetch clears
        # only those, rather than a DELETE per document that finds nothing (the import lease, or a
        # plain sync's runner lock, keeps anyone else from recording this company's failures meanwhile).
        failed: set[str] = set()
        listing_failures = False

        def submit(ref: DocumentRef) -> None:
            nonlocal listed
            listed += 1
            self.progress.update(task, total=listed)
            seq = tracker.add()
            slots.acquire()
            done: Future[bool] = Future()

            def settled(future: Future[bool]) -> None:
                try:
                    # False: not even the failure could be recorded, or a stop came first. The
                    # item stays unsettled, so the cursor is never saved past it.
                    error = None if future.cancelled() else future.exception()
                    if error is not None:  # only what _fetch does not catch (SystemExit and the like)
                        self.control.abort(f"importing {ref.source_id} stopped the run: {describe(error)}")
                    elif not future.cancelled() and future.result():
                        tracker.settle(seq)
                finally:
                    with latest_lock:
                        # ``future``, not ``done``: a callback naming its own future is a reference
                        # cycle per document, garbage that waits for a full collection to be freed.
                        if latest.get(ref.source_id) is future:
                            del latest[ref.source_id]
                    slots.release()
                    self.progress.update(task, advance=1)

            def launch(_: object = None) -> None:
                try:
                    fetch = pool.submit(self._fetch, account, company, ref, ctx, where, failed)
                except BaseException as exc:  # noqa: BLE001 - settled as a failure of the run, never lost
                    done.set_exception(exc)
                    return
                fetch.add_done_callback(lambda finished: _pass_on(finished, done))

            done.add_done_callback(settled)
            with latest_lock:
                earlier = latest.get(ref.source_id)
                latest[ref.source_id] = done
            if earlier is None:
                launch()
            else:
                earlier.add_done_callback(launch)

        if not self.dry_run:
            for failure in self.state.failures(account.name, company.id):
                failed.add(failure.ref.source_id)
                listing_failures = listing_failures or failure.kind == "listing"
                if failure.kind == "fetch":
                    submit(failure.ref)  # earlier failures first: the cursor has already moved past them
        complete = True
        for item in self.plugins.call(account.plugin, "list_documents", account=account, company=company,
                                      cursor=cursor, ctx=ctx):
            if self.control.stopping:  # a safe point: what is not listed yet is listed next run
                complete = False
                break
            if isinstance(item, DocumentRef):
                submit(item)
            elif isinstance(item, Deletion):
                self._delete(account, company, item)
            elif isinstance(item, Checkpoint):
                tracker.checkpoint(item.cursor)
            elif isinstance(item, ListingError):
                tracker.add()  # never settled: the cursor stays before it, so it is listed again
                unusable.append(self._unusable(account, company, item, where, len(unusable) + 1))
                failed.add(unusable[-1])
            else:
                raise InvoiceSyncError(f"list_documents yielded {type(item).__name__}, not a ref or checkpoint")
        slots.wait_all()  # for this company's fetches
        if complete and not self.dry_run and listing_failures:
            # A whole listing saw every item still unusable: the other listing failures are stale
            # (and only those read at its start can be: this listing's own are all in `unusable`).
            self.state.clear_listing_failures(account.name, company.id, keep=unusable)

    def _fetch(self, account: Account, company: Company, ref: DocumentRef, ctx: Context, where: str,
               failed: set[str]) -> bool:
        """Fetch, store and hand on one document. True once it is settled: done, or its failure recorded."""
        if self.control.stopping:
            return False  # not started: listed again next run
        try:
            document = self.plugins.call(account.plugin, "fetch_document", account=account, company=company,
                                         ref=ref, ctx=ctx)
            if not isinstance(document, Document):
                raise InvoiceSyncError(f"fetch_document returned {type(document).__name__}, not a Document")
            outcome = "new" if self.dry_run else self.state.upsert_document(document)
            if not self.dry_run and ref.source_id in failed:
                self.state.clear_failure(account.name, company.id, ref.source_id)
            if outcome != "unchanged":
                self.deliver(document)
        except Exception as exc:  # noqa: BLE001 - one bad document must not stop the others
            # Anything, from the plugin or from storing it: stored but not handed on is fine, the
            # targets' backlog picks up every document they have not taken.
            failed.add(ref.source_id)  # before it is recorded: a later fetch of it must clear it
            return self._failed(account, company, ref, where, exc)
        self.report.count_import(account.name, outcome)
        return True

    def _failed(self, account: Account, company: Company, ref: DocumentRef, where: str,
                exc: Exception) -> bool:
        message = describe(exc)
        log.warning("%s: document %s failed: %s", where, ref.source_id, message)
        self.report.count_import(account.name, "failed")
        self.report.problem(where, ref.source_id, message)
        self.control.check_fatal(exc)
        if self.dry_run:
            return True
        try:
            self.state.record_failure(account.name, company.id, ref, message)
        except Exception as record_exc:  # noqa: BLE001 - then the cursor must not move past it
            self.report.problem(where, ref.source_id, f"the failure could not be recorded either: "
                                                      f"{describe(record_exc)}; listed again next run")
            self.control.check_fatal(record_exc)
            return False
        return True

    def _unusable(self, account: Account, company: Company, item: ListingError, where: str, number: int) -> str:
        """Record a ListingError as a failure of that document and field; return its key."""
        key = item.source_id or f"listing#{number}"
        field = f"field {item.field}: " if item.field else ""
        message = f"listed item {item.source_id or '(without an id)'} is unusable: {field}{item.message}"
        log.warning("%s: %s", where, message)
        self.report.count_import(account.name, "failed")
        self.report.problem(where, key, message)
        if not self.dry_run:
            try:
                self.state.record_listing_failure(account.name, company.id, key, item.field, message)
            except Exception as exc:  # noqa: BLE001 - the held cursor still brings it back
                self.report.problem(where, key, f"the failure could not be recorded: {describe(exc)}")
                self.control.check_fatal(exc)
        return key

    def _save_cursor(self, account: Account, company: Company, cursor: str, where: str) -> None:
        if self.dry_run:
            return
        try:
            self.state.set_cursor(account.name, company.id, cursor)
        except Exception as exc:  # noqa: BLE001 - an unsaved cursor only means listing more next run
            self.report.problem(where, None, f"could not save the cursor: {describe(exc)}")
            self.control.check_fatal(exc)

    def _delete(self, account: Account, company: Company, deletion: Deletion) -> None:
        document_id = Document.make_id(account.plugin, account.name, company.id, deletion.source_id)
        if self.dry_run:
            if (stored := self.state.get_document(document_id)) is not None and not stored.deleted:
                self.report.count_import(account.name, "deleted")
                self.deliver(stored.model_copy(update={"deleted": True}))  # show what targets would do
            return
        if self.state.mark_deleted(document_id):
            self.report.count_import(account.name, "deleted")
            if (document := self.state.get_document(document_id)) is not None:
                self.deliver(document)  # each target applies its deletion policy (or records why not)


def _pass_on(finished: Future[bool], into: Future[bool]) -> None:
    """Hand a fetch's outcome to the future the listing waits on."""
    if finished.cancelled():
        into.cancel()
    elif (error := finished.exception()) is not None:
        into.set_exception(error)
    else:
        into.set_result(finished.result())
