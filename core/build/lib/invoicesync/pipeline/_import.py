"""The import stage: list a company's changes, fetch documents concurrently, store them, move the cursor.

The cursor of a checkpoint is stored only once every item listed before it is settled: stored in
the library, or recorded as a failed fetch (retried first on the next run). So a crash at any
point re-lists from the last safe cursor, and nothing is lost; the library's id+version check
makes the re-listed documents "unchanged", so nothing is imported twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from ..context import Context
from ..errors import InvoiceSyncError
from ..models import Account, Checkpoint, Company, Deletion, Document, DocumentRef
from ..plugins import Plugins
from ..secrets import redact
from ..state import StateStore
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
    ) -> None:
        self.plugins = plugins
        self.state = state
        self.report = report
        self.progress = progress
        self.dry_run = dry_run
        self.full = full
        self.deliver = deliver

    def run(self, account: Account, ctx: Context) -> None:
        concurrency = self.plugins.get(account.plugin).info.concurrency
        if not account.companies:
            self.report.problem(account.name, None, "no companies chosen; run `invoicesync connect` again")
            return
        with ThreadPoolExecutor(concurrency, thread_name_prefix=f"fetch-{account.name}") as pool:
            for company in account.companies:
                try:
                    self._company(account, company, ctx, pool, concurrency)
                except Exception as exc:  # noqa: BLE001 - one unreachable company must not stop the others
                    reason = str(exc) if isinstance(exc, InvoiceSyncError) else f"{type(exc).__name__}: {exc}"
                    self.report.problem(f"{account.name}/{company.name or company.id}", None,
                                        f"company {company.name} ({company.id}): {reason}")
        if not self.dry_run:
            self.state.record_sync(account.name, self.report.account_result(account.name))

    def _company(self, account: Account, company: Company, ctx: Context, pool: ThreadPoolExecutor,
                 concurrency: int) -> None:
        where = f"{account.name}/{company.name or company.id}"
        task = self.progress.add_task(f"import {where}", total=0)
        cursor = None if self.full else self.state.get_cursor(account.name, company.id)
        tracker = CursorTracker(lambda c: None if self.dry_run else self.state.set_cursor(account.name, company.id, c))
        # Bound what is in flight, so listing a million documents never holds a million refs.
        slots = threading.BoundedSemaphore(concurrency * 4)
        listed = 0

        def submit(ref: DocumentRef) -> None:
            nonlocal listed
            listed += 1
            self.progress.update(task, total=listed)
            seq = tracker.add()
            slots.acquire()
            future = pool.submit(self._fetch, account, company, ref, ctx, where)

            def settled(_: object) -> None:
                tracker.settle(seq)
                slots.release()
                self.progress.update(task, advance=1)

            future.add_done_callback(settled)

        if not self.dry_run:
            for failure in self.state.failures(account.name, company.id):
                submit(failure.ref)  # earlier failures first: the cursor has already moved past them
        for item in self.plugins.call(account.plugin, "list_documents", account=account, company=company,
                                      cursor=cursor, ctx=ctx):
            if isinstance(item, DocumentRef):
                submit(item)
            elif isinstance(item, Deletion):
                self._delete(account, company, item)
            elif isinstance(item, Checkpoint):
                tracker.checkpoint(item.cursor)
            else:
                raise InvoiceSyncError(f"list_documents yielded {type(item).__name__}, not a ref or checkpoint")
        # Wait for this company's fetches: take every slot back.
        for _ in range(concurrency * 4):
            slots.acquire()
        for _ in range(concurrency * 4):
            slots.release()

    def _fetch(self, account: Account, company: Company, ref: DocumentRef, ctx: Context, where: str) -> None:
        try:
            document = self.plugins.call(account.plugin, "fetch_document", account=account, company=company,
                                         ref=ref, ctx=ctx)
            if not isinstance(document, Document):
                raise InvoiceSyncError(f"fetch_document returned {type(document).__name__}, not a Document")
        except Exception as exc:  # noqa: BLE001 - one bad document must not stop the others
            message = redact(str(exc)) if isinstance(exc, InvoiceSyncError) else f"{type(exc).__name__}: {exc}"
            log.warning("%s: document %s failed: %s", where, ref.source_id, message)
            self.report.count_import(account.name, "failed")
            self.report.problem(where, ref.source_id, message)
            if not self.dry_run:
                self.state.record_failure(account.name, company.id, ref, message)
            return
        outcome = "new" if self.dry_run else self.state.upsert_document(document)
        if not self.dry_run:
            self.state.clear_failure(account.name, company.id, ref.source_id)
        self.report.count_import(account.name, outcome)
        if outcome != "unchanged":
            self.deliver(document)

    def _delete(self, account: Account, company: Company, deletion: Deletion) -> None:
        document_id = Document.make_id(account.plugin, account.name, company.id, deletion.source_id)
        if self.dry_run:
            if self.state.get_document(document_id) is not None:
                self.report.count_import(account.name, "deleted")
            return
        if self.state.mark_deleted(document_id):
            self.report.count_import(account.name, "deleted")
