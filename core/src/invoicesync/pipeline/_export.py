"""The export stage: one worker group per target account, fed while the import is still running.

Exactly once, from the core's side: a document is pushed only if the ledger has no settled
record of its current version at that target; an intent (``pending``) is written before each
push, so a crash leaves a trace the plugin is shown next time; and a document is never in two
pushes to the same target at once — not even by two processes: each push happens under a
per-(document, target) claim in the state, taken before the intent and released once the outcome is
recorded, so a second runner that gets in (a bypassed lock, two hosts on one state) skips what the
first holds. A crashed owner's claims expire with their lease. The plugin's side is to look up
before writing.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from datetime import UTC, datetime

from ..context import Context
from ..export_options import ExportOptions
from ..models import Account, Delivery, DeliveryStatus, Document, PushRequest
from ..plugins import Plugins
from ..secrets import redact
from ..state import StateStore
from ._control import RunControl, describe
from ._report import Progress, SyncReport
from ._requests import SETTLED, RequestBuilder
from ._stream import PushStream

log = logging.getLogger("invoicesync.sync")

__all__ = ["SETTLED", "TargetWorkers"]
#: How often one document is offered again in one run after a transient failure (``retry_after``).
RETRIES_PER_RUN = 2
#: How long a claim outlives its owner's last sign of life; a live run renews its claims well before.
CLAIM_LEASE = 180.0
#: How long a push worker waits for its batch to fill while documents are still coming.
BATCH_LINGER = 0.5
#: How many document versions that ended this run unsettled (failed, held elsewhere, an internal
#: error) are remembered in memory, the latest first. An older one is recognised by the ledger: a
#: failure or an intent recorded after this run started. Settled ones are not remembered at all: the
#: ledger answers for them. So memory does not grow with the number of documents a run handles.
UNSETTLED_IN_MEMORY = 1024
_DONE = object()


class TargetWorkers:
    def __init__(self, account: Account, ctx: Context, plugins: Plugins, state: StateStore,
                 report: SyncReport, progress: Progress, *, dry_run: bool,
                 control: RunControl | None = None, options: ExportOptions | None = None) -> None:
        info = plugins.get(account.plugin).info
        # Deletions go only to plugins written for API 2 or later; the core settles them for older ones.
        self.requests = RequestBuilder(account.name, options or ExportOptions(),
                                       handles_deletions=info.api_version[1] >= 2)
        self.account = account
        self.ctx = ctx
        self.plugins = plugins
        self.state = state
        self.report = report
        self.progress = progress
        self.dry_run = dry_run
        self.control = control or RunControl()
        self._claimed: set[str] = set()
        #: Hook API 4: one push call per account takes documents as they come (``_stream``).
        self.streaming = info.streaming and info.api_version[1] >= 4
        self.batch_size = max(1, info.batch_size)
        self.concurrency = 1 if self.streaming else max(1, info.concurrency)
        self._queue: queue.Queue[object] = queue.Queue(maxsize=self.batch_size * self.concurrency * 2)
        self._lock = threading.Lock()
        self._queued: set[str] = set()
        #: Document versions whose push ended this run unsettled (see ``UNSETTLED_IN_MEMORY``; every
        #: one in a dry run, which records nothing): not offered again this run, except as an in-run
        #: retry, so a backlog read never pushes twice what the import brought.
        self._handled: dict[str, str] = {}
        #: Ledger records after this (whole seconds, as the ledger keeps them) are this run's.
        self._started = datetime.now(UTC).replace(microsecond=0)
        #: Documents whose in-run retry is on its way to a worker: the ledger's failure is no reason to skip them.
        self._retrying: set[str] = set()
        self._spilled = False
        self._closing = threading.Event()
        # In-run retries of transient failures: how many each document had, and how many are waiting.
        self._retries: dict[str, int] = {}
        self._waiting = 0
        self._retry_wait = threading.Condition()
        self._task = progress.add_task(f"export → {account.name}", total=0)
        self._total = 0
        work = self._stream_work if self.streaming else self._work
        self._threads = [threading.Thread(target=work, name=f"push-{account.name}-{i}", daemon=True)
                         for i in range(self.concurrency)]
        for thread in self._threads:
            thread.start()

    def offer(self, document: Document) -> None:
        """The import's hand-over: queue ``document`` if there is room, and never wait for it.

        A fetch thread must not stall behind a slow target. A document that finds the queue full is
        already in the library with no delivery here, so it is in this target's backlog (the ledger
        is the queue): ``take_spilled`` tells the backlog feeder to read it once the import is done.
        """
        self._enqueue(document, block=self.dry_run)  # a dry run stores nothing: no backlog to fall back on

    def feed(self, document: Document) -> None:
        """The backlog's hand-over: wait for room. Skips what this run already pushed or queued."""
        self._enqueue(document, block=True)

    def take_spilled(self) -> bool:
        """Whether ``offer`` left documents to the backlog since the last call."""
        with self._lock:
            spilled, self._spilled = self._spilled, False
            return spilled

    def _enqueue(self, document: Document, *, block: bool, retry: bool = False) -> None:
        if self.control.stopping:
            return  # not pushed this run; the backlog offers it again next run
        with self._lock:
            handled = self._handled.get(document.id)  # (a version is a hash of the document: only if needed)
            if document.id in self._queued or (handled is not None and not retry and handled == document.version):
                return
            self._queued.add(document.id)  # before the put: a worker may finish it at once
            if not block:
                try:
                    self._queue.put_nowait(document)
                except queue.Full:
                    self._queued.discard(document.id)
                    self._spilled = True
                    return
            self._total += 1
            self.progress.update(self._task, total=self._total)
        if block:
            self._queue.put(document)

    def close(self) -> None:
        """Stop once every queued document is settled and no in-run retry is still waiting.

        After a stop the queue drains without pushing, and waiting retries are left to the next run.
        """
        self._closing.set()  # nothing more is coming from the import: push partial batches at once
        while True:
            self._queue.join()
            with self._retry_wait:
                if (self._waiting == 0 or self.control.stopping) and self._queue.unfinished_tasks == 0:
                    break
                self._retry_wait.wait(timeout=0.5)
        for _ in self._threads:
            self._queue.put(_DONE)
        for thread in self._threads:
            thread.join()

    # -- workers -------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            first = self._queue.get()
            if first is _DONE:
                return
            batch = [first]
            documents: list[Document] = []
            # Whatever happens, every item taken is marked done: close() must never wait forever.
            try:
                self._fill(batch)
                documents = [d for d in batch if isinstance(d, Document)]
                self._push(documents)
            except BaseException as exc:  # noqa: BLE001 - the worker lives on; a full disk ends the run
                log.warning("%s: export worker error: %s", self.account.name, describe(exc))
                for document in documents:
                    self.report.problem(self.account.name, document.id, f"internal error: {describe(exc)}")
                    self._finish(document.id, document.version)
                self.control.check_fatal(exc)
                if not isinstance(exc, Exception):
                    self.control.abort(f"export to {self.account.name} stopped: {describe(exc)}")
            finally:
                self._release_claims(documents)
                for _ in batch:
                    self._queue.task_done()

    def _stream_work(self) -> None:
        """Hook API 4 targets: one push call after another, each fed until nothing more comes
        (``_stream.PushStream``); a later call takes what arrives after (in-run retries)."""
        while True:
            first = self._queue.get()
            if first is _DONE:
                return
            assert isinstance(first, Document)
            try:
                PushStream(self, first, _DONE).run()
            except BaseException as exc:  # noqa: BLE001 - as _work: a full disk ends the run
                log.warning("%s: export worker error: %s", self.account.name, describe(exc))
                self.control.check_fatal(exc)
                if not isinstance(exc, Exception):
                    self.control.abort(f"export to {self.account.name} stopped: {describe(exc)}")

    def _fill(self, batch: list[object]) -> None:
        """Take more documents into ``batch``, up to the plugin's batch size, while they keep coming:
        for up to ``BATCH_LINGER`` seconds, and not once the queue is empty after ``close()``.

        A few full batches rather than many small ones: a batch commit (Dropbox's finish_batch)
        is one request however many files it commits, whether the import is fast or slow."""
        deadline = time.monotonic() + BATCH_LINGER
        while len(batch) < self.batch_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                item = self._queue.get(timeout=min(remaining, 0.05))
            except queue.Empty:
                if self._closing.is_set() or self.control.stopping:
                    return
                continue
            if item is _DONE:
                self._queue.put(_DONE)  # hand the stop signal to the next worker round
                return
            batch.append(item)

    def _push(self, documents: list[Document]) -> None:
        requests = [r for r in map(self._prepare, documents) if r is not None]
        if not requests:
            return
        outcomes: dict[str, Delivery] = {}
        retry: list[tuple[Document, float]] = []
        by_id = {r.document.id: r.document for r in requests}
        try:
            for delivery in self.plugins.call(self.account.plugin, "push_documents", account=self.account,
                                              requests=requests, ctx=self.ctx):
                outcomes[delivery.document_id] = delivery
                if delivery.document_id in by_id and self._retry_soon(delivery):
                    retry.append((by_id[delivery.document_id], delivery.retry_after or 0.0))
                    self._record(delivery, count=False, release=True)
                else:
                    offered = by_id.get(delivery.document_id)
                    self._record(delivery, deletion=offered is not None and offered.deleted,
                                 release=offered is not None)
        except Exception as exc:  # noqa: BLE001 - a failing batch fails its documents, not the run
            message = describe(exc)
            log.warning("%s: push failed: %s", self.account.name, message)
            for request in requests:
                if request.document.id not in outcomes:
                    outcomes[request.document.id] = self._record(self._failed(request, message))
        for request in requests:
            outcome = outcomes.get(request.document.id)
            if outcome is None:
                outcome = self._record(self._failed(request, "the target plugin reported no outcome"))
            self._finish(request.document.id, request.document.version,
                         settled=outcome.status not in (DeliveryStatus.FAILED, DeliveryStatus.PENDING))
        for document, delay in retry:  # after _finish, so the offer is not taken for a duplicate
            self._schedule_retry(document, delay)

    def _prepare(self, document: Document) -> PushRequest | None:
        """Claim ``document``, decide what to ask of the plugin, and write the intent (``pending``)
        before the push; ``None`` when it is not pushed (settled, settled by core, held elsewhere)."""
        if self.control.stopping:  # a safe point: no new push starts; the next run offers it
            self._finish(document.id)
            return None
        if self.dry_run:
            return self._decide(document)
        # The claim, the reads under it and the intent: one SQLite transaction, not two commits
        # (a failure inside undoes the claim too: nothing was pushed).
        with self.state.transaction():
            return self._decide(document)

    def _decide(self, document: Document) -> PushRequest | None:
        if not self._claim(document):
            return None
        if self.dry_run:
            previous = self.state.get_delivery(document.id, self.account.name)
        else:
            # Read under the claim: the library may hold a newer version than the one queued,
            # and another runner may have settled it since it was queued. One query for both; the
            # library's copy is parsed only when it is another version than the queued one.
            stored, previous = self.state.document_for_push(document.id, self.account.name,
                                                            have_version=document.version)
            document = stored or document
        if self._handled_earlier(document, previous):
            self._finish(document.id, document.version, settled=False)
            return None
        decision = self.requests.build(document, previous)
        if decision is None:  # settled already
            self._finish(document.id, document.version, settled=True)
            return None
        if isinstance(decision, Delivery):  # the core settles it (filtered out, deletion kept)
            self._record(decision)
            self._finish(document.id, document.version, settled=True)
            return None
        if not self.dry_run:
            self.state.record_delivery(Delivery(
                document_id=decision.document.id, target=self.account.name,
                version=decision.document.version, status=DeliveryStatus.PENDING,
                extra=decision.previous.extra if decision.previous else {},
                export_options=self.requests.fingerprint,
            ))
        return decision

    def _claim(self, document: Document) -> bool:
        """Take this document's claim at this target, or report it as in progress elsewhere."""
        document_id = document.id
        if self.dry_run:
            return True
        if self.state.claim(document_id, self.account.name, self.control.owner, CLAIM_LEASE):
            with self._lock:
                self._claimed.add(document_id)
            return True
        # Not pushed and not settled: the ledger is left as the other runner leaves it.
        self.report.count_export(self.account.name, "elsewhere")
        self.report.problem(self.account.name, document_id,
                            "in progress elsewhere (another run holds its claim); retried next run")
        self._finish(document_id, document.version)
        return False

    def _release_claims(self, documents: list[Document]) -> None:
        """After the outcomes are recorded (or could not be): a crash before this leaves the lease."""
        for document in documents:
            self._release_claim(document.id)

    def _release_claim(self, document_id: str) -> None:
        with self._lock:
            if document_id not in self._claimed:
                return
            self._claimed.discard(document_id)
        try:
            self.state.release_claim(document_id, self.account.name, self.control.owner)
        except Exception as exc:  # noqa: BLE001 - the lease runs out by itself
            log.warning("%s: could not release the claim on %s: %s", self.account.name, document_id,
                        describe(exc))

    def _retry_soon(self, delivery: Delivery) -> bool:
        if delivery.status is not DeliveryStatus.FAILED or delivery.retry_after is None or self.dry_run:
            return False
        with self._retry_wait:
            tries = self._retries.get(delivery.document_id, 0)
            if tries >= RETRIES_PER_RUN:
                self._retries.pop(delivery.document_id, None)
                return False
            self._retries[delivery.document_id] = tries + 1
            return True

    def _schedule_retry(self, document: Document, delay: float) -> None:
        with self._retry_wait:
            self._waiting += 1  # before this batch's task_done: close() cannot slip through

        def fire() -> None:
            with self._lock:
                self._retrying.add(document.id)
            self._enqueue(document, block=True, retry=True)  # does nothing once the run is stopping
            with self._retry_wait:
                self._waiting -= 1
                self._retry_wait.notify_all()

        timer = threading.Timer(min(delay, 60.0), fire)
        timer.daemon = True
        timer.start()

    def _failed(self, request: PushRequest, message: str) -> Delivery:
        # Keep what the plugin knew of its earlier delivery (ids, paths): the next try needs it.
        return Delivery(document_id=request.document.id, target=self.account.name,
                        version=request.document.version, status=DeliveryStatus.FAILED, message=message,
                        extra=request.previous.extra if request.previous else {})

    def _record(self, delivery: Delivery, *, count: bool = True, deletion: bool = False,
                release: bool = False) -> Delivery:
        """Write ``delivery`` to the ledger (and count it in the report unless ``count`` is off).
        ``release``: it is the outcome of a push of ours, whose claim goes in the same transaction."""
        delivery = delivery.model_copy(update={"target": self.account.name, "at": datetime.now(UTC),
                                               "export_options": self.requests.fingerprint,
                                               "message": redact(delivery.message) if delivery.message else None})
        if count or delivery.status is not DeliveryStatus.FAILED:  # the outcome stands: no retry is due
            with self._retry_wait:
                self._retries.pop(delivery.document_id, None)
        if not count:  # a transient failure about to be retried: ledger only, the report waits
            if not self.dry_run:
                self._store(delivery, release)
            return delivery
        status = delivery.status.value
        self.report.count_export(self.account.name, status, reason=delivery.message)
        if delivery.status is DeliveryStatus.FAILED:
            self.report.problem(self.account.name, delivery.document_id, delivery.message or "failed")
        if delivery.status is DeliveryStatus.PLANNED:
            self.report.plan(self.account.name, delivery.document_id, delivery.target_path, delivery.message,
                             deletion=deletion)
        if not self.dry_run:
            self._store(delivery, release)
        return delivery

    def _store(self, delivery: Delivery, release: bool) -> None:
        """One transaction for an outcome and the end of its claim, when this run holds the claim
        (``_release_claim`` then has nothing left to do); a crash before it leaves both."""
        document_id = delivery.document_id
        with self._lock:
            release = release and document_id in self._claimed
        if not release:
            self.state.record_delivery(delivery)
            return
        self.state.record_delivery(delivery, release_claim_of=self.control.owner)
        with self._lock:
            self._claimed.discard(document_id)

    def _handled_earlier(self, document: Document, previous: Delivery | None) -> bool:
        """Whether this version already ended unsettled in this run (a failure or an intent recorded
        since it started) and ``UNSETTLED_IN_MEMORY`` let it go: a backlog read offers it again, but
        it waits for the next run, as it did when every handled version was kept in memory.

        An in-run retry is not skipped. A record of the run's first second does not count (the ledger
        keeps whole seconds, and a run before this one may have written it): that document is pushed
        once more, which the claim and the plugin's look-up before writing make safe."""
        with self._lock:
            if document.id in self._retrying:
                self._retrying.discard(document.id)
                return False
        if previous is None or previous.at is None or previous.version != document.version \
                or previous.status not in (DeliveryStatus.FAILED, DeliveryStatus.PENDING):
            return False
        at = previous.at if previous.at.tzinfo else previous.at.replace(tzinfo=UTC)  # an old row without its zone
        return at > self._started

    def _finish(self, document_id: str, version: str | None = None, *, settled: bool = False) -> None:
        """``document_id``'s push ended (``version``: it was decided; ``settled``: in the ledger for good)."""
        with self._lock:
            self._queued.discard(document_id)
            if version is not None and (self.dry_run or not settled):
                self._handled.pop(document_id, None)  # re-inserted: the latest is kept longest
                self._handled[document_id] = version
                if not self.dry_run and len(self._handled) > UNSETTLED_IN_MEMORY:
                    del self._handled[next(iter(self._handled))]
            elif version is not None:
                self._handled.pop(document_id, None)
        self.progress.update(self._task, advance=1)
