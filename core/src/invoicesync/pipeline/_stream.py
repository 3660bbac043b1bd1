"""Streaming export (hook API 4): one ``push_documents`` call takes documents while the import runs.

A target whose ``PluginInfo.streaming`` is set gets ``requests`` as a lazy iterable instead of a
batch: it yields each document as it reaches the export queue and ends once the run has nothing
more (the import is done and the queue is empty, or the run is stopping). The plugin pulls it from
one thread of its own while it yields deliveries as they land, so it can send bytes as soon as a
document arrives and still commit many files in one request (Dropbox's ``finish_batch_v2`` takes
1,000), without a batch boundary making uploads wait.

The ledger works exactly as for batches: each document is claimed and its intent (``pending``)
written before the plugin sees it (``TargetWorkers._prepare``), and its outcome recorded, its claim
released and its queue slot freed only once the plugin reports it. Every document the iterable hands
out is tracked until then; whatever the plugin never reports (it raised, or returned early) is
recorded ``failed`` when the call ends. A document taken from the queue after the call ended is
left to the next run, untouched, like one a stop left behind.

A document the plugin holds (uploaded, waiting for a commit that gathers up to 1,000 files) is
tracked here as its id, version and deletion flag only; the request itself waits in a private
SQLite file (on disk, gone with the call), read back only when it is needed again: to retry it
in this run, or to fail it with what its last delivery knew. So the documents in flight cost
no memory per document here, whatever the plugin's commit window.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple

from ..models import Delivery, DeliveryStatus, Document, PushRequest
from ._control import describe

if TYPE_CHECKING:
    from ._export import TargetWorkers

log = logging.getLogger("invoicesync.sync")

#: How often the iterable, waiting for the next document, checks whether the run has ended.
POLL = 0.05


class _Opened(NamedTuple):
    """What settling a document handed to the plugin needs, kept while the plugin works on it."""

    id: str
    version: str
    deleted: bool


class _Requests:
    """Requests handed to the plugin, by document id, in a private SQLite file (``connect("")``:
    on disk, deleted when closed). The caller holds the stream's lock."""

    def __init__(self) -> None:
        self._db = sqlite3.connect("", check_same_thread=False, isolation_level=None)
        self._db.executescript("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -512; "
                               "CREATE TABLE requests (id TEXT PRIMARY KEY, request TEXT NOT NULL) WITHOUT ROWID;")

    def put(self, request: PushRequest) -> None:
        self._db.execute("INSERT OR REPLACE INTO requests VALUES (?, ?)",
                         (request.document.id, request.model_dump_json()))

    def take(self, document_id: str) -> PushRequest:
        row = self._db.execute("SELECT request FROM requests WHERE id = ?", (document_id,)).fetchone()
        self._db.execute("DELETE FROM requests WHERE id = ?", (document_id,))
        return PushRequest.model_validate_json(row[0])

    def drop(self, document_id: str) -> None:
        self._db.execute("DELETE FROM requests WHERE id = ?", (document_id,))

    def close(self) -> None:
        self._db.close()


class PushStream:
    """One streaming ``push_documents`` call, fed from the target's queue."""

    def __init__(self, workers: TargetWorkers, first: Document, done: object) -> None:
        self.workers = workers
        self._first: Document | None = first
        self._done = done  #: the queue's stop signal
        self._guard = threading.Lock()
        self._open: dict[str, _Opened] = {}  #: handed to the plugin, no outcome yet
        self._requests_out = _Requests()  #: the same documents' requests, on disk
        self._closed = False

    def run(self) -> None:
        workers = self.workers
        try:
            for delivery in workers.plugins.call(workers.account.plugin, "push_documents",
                                                 account=workers.account, requests=self._requests(),
                                                 ctx=workers.ctx):
                self._outcome(delivery)
        except Exception as exc:  # noqa: BLE001 - a failing push fails its documents, not the run
            message = describe(exc)
            log.warning("%s: push failed: %s", workers.account.name, message)
            self._close(message)
        except BaseException:
            # The run is going down (a full disk, an interrupt): as for a batch, the intents stay
            # ``pending`` for the next run to show the plugin; only the slots are freed.
            self._close(None)
            raise
        else:
            self._close("the target plugin reported no outcome")
        finally:
            if self._first is not None:  # the plugin never asked for a document
                self._leave(self._first)
            with self._guard:
                self._closed = True  # already, unless the run is going down: nothing is stored any more
                self._requests_out.close()

    # -- the plugin's side: documents in -------------------------------------------------------

    def _requests(self) -> Iterator[PushRequest]:
        """Runs in the plugin's thread. Every item taken from the queue is either handed out (and
        tracked in ``_open``) or settled here before the next one is taken."""
        workers = self.workers
        item: object | None = self._first
        self._first = None
        while item is not None:
            if item is self._done:
                workers._queue.put(self._done)  # for the worker's loop, which then ends
                return
            assert isinstance(item, Document)
            with self._guard:
                closed = self._closed
            if closed:
                self._leave(item)
                return
            request = self._prepare(item)
            if request is not None:
                document = request.document
                with self._guard:
                    if not self._closed:
                        self._open[document.id] = _Opened(document.id, document.version, document.deleted)
                        self._requests_out.put(request)
                        closed = False
                    else:
                        closed = True
                if closed:
                    self._settle(_Opened(document.id, document.version, document.deleted),
                                 workers._failed(request, "the push ended before this document"), None)
                    return
                del document
                yield request
                del request  # the plugin's now: this frame keeps none of it
            item = self._next()

    def _prepare(self, document: Document) -> PushRequest | None:
        workers = self.workers
        try:
            request = workers._prepare(document)
        except Exception as exc:  # noqa: BLE001 - this document fails, the stream goes on
            workers.report.problem(workers.account.name, document.id, f"internal error: {describe(exc)}")
            workers._finish(document.id, document.version)
            workers.control.check_fatal(exc)  # a full disk ends the run (the stream then drains)
            request = None
        except BaseException:  # the run is going down (a full disk): free the slot, as a batch does
            workers._finish(document.id, document.version)
            workers._release_claim(document.id)
            workers._queue.task_done()
            raise
        if request is None:
            workers._release_claim(document.id)
            workers._queue.task_done()
        return request

    def _next(self) -> object | None:
        """The next queue item, or ``None`` once nothing more is coming in this call."""
        workers = self.workers
        while True:
            try:
                return workers._queue.get(timeout=POLL)
            except queue.Empty:
                if workers._closing.is_set() or workers.control.stopping:
                    return None

    # -- the core's side: deliveries out -------------------------------------------------------

    def _outcome(self, delivery: Delivery) -> None:
        workers = self.workers
        with self._guard:
            opened = self._open.pop(delivery.document_id, None)
        if opened is None:  # not one of ours (or reported twice): recorded, as a batch push does
            workers._record(delivery)
            return
        retry = workers._retry_soon(delivery)
        with self._guard:  # the request is read back only to offer the document again
            document = self._requests_out.take(opened.id).document if retry else None
            if not retry:
                self._requests_out.drop(opened.id)
        self._settle(opened, delivery, document)

    def _settle(self, opened: _Opened, delivery: Delivery, document: Document | None) -> None:
        """Record the outcome, then free the document: its claim, its queue slot. ``document`` is
        given when the outcome is to be retried in this run (``TargetWorkers._retry_soon``)."""
        workers = self.workers
        retry = document is not None
        try:
            workers._record(delivery, count=not retry, deletion=opened.deleted and not retry, release=True)
            # A settled outcome is the ledger's to remember, not this run's memory (``_export``).
            workers._finish(opened.id, opened.version,
                            settled=delivery.status not in (DeliveryStatus.FAILED, DeliveryStatus.PENDING))
            if retry and document is not None:  # before task_done, so close() cannot slip through
                workers._schedule_retry(document, delivery.retry_after or 0.0)
        finally:
            workers._release_claim(opened.id)
            workers._queue.task_done()

    def _close(self, message: str | None) -> None:
        """No more documents for this call; what it never reported fails with ``message`` (``None``:
        nothing is recorded, the intents stay)."""
        workers = self.workers
        with self._guard:
            self._closed = True
            left, self._open = list(self._open.values()), {}
        for opened in left:
            if message is not None:
                with self._guard:
                    request = self._requests_out.take(opened.id)
                self._settle(opened, workers._failed(request, message), None)  # a failure of ours: no retry
                continue
            workers._finish(opened.id, opened.version)
            workers._release_claim(opened.id)
            workers._queue.task_done()

    def _leave(self, document: Document) -> None:
        """Taken from the queue but never prepared: not pushed this run (the backlog brings it back)."""
        self.workers._finish(document.id)
        self.workers._queue.task_done()
