"""The Dropbox push (hook API 4): bytes go up as documents arrive, commits gather up to 1,000.

The only push path. The core hands the documents over one by one while the import runs; a list
(a direct call) is the same, with its input ended from the start. Each is placed as it comes
(``export.plan``) and its files' upload sessions start at once on the account's upload threads
(eight in flight). A small file's closed session then waits for the next ``finish_batch_v2``,
which goes when 1,000 files are waiting (Dropbox's limit), when nothing more can come (the input
ended and every upload is done), or when the oldest has waited ``commit_interval`` seconds: one
commit for a whole first sync of a few hundred documents, and no upload ever waits for a batch to
fill. Large files (and, with ``batch_commit`` off, every file) go on their own
(``Uploader.upload_alone``).

A document's delivery is yielded once all its files are settled, so the ledger says ``delivered``
only after Dropbox confirmed every write. A file refused because its name was taken meanwhile
(``path/conflict`` on an ``add``: another file is there, see ``index``) gets its document placed
again with direct look-ups, once, and its closed session is committed to the new name: a session
whose commit failed stays committable (Dropbox's ``UploadWriteFailed.upload_session_id``), so no
byte is sent twice. A crash between upload and commit leaves uncommitted sessions only, which
Dropbox drops; the next run uploads again. Deliveries come in the order documents settle, not
the order they arrived.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from invoicesync import Context, Delivery, PushRequest

from .auth import token_auth
from .client import DropboxClient
from .deletion import apply_deletion
from .export import DocumentWork, delivery_of, note_outcomes, order_of, plan, planned
from .index import index_for
from .placement import Placer
from .settings import DropboxSettings
from .uploads import MAX_BATCH_ENTRIES, FileTask, Uploader, upload_threads

_Action = Callable[["DocumentWork", "FileTask"], None]


@dataclass
class _Waiting:
    """A small file whose closed session waits for the next batch commit."""

    work: DocumentWork
    task: FileTask
    session: str
    since: float


class StreamPush:
    def __init__(self, ctx: Context, settings: DropboxSettings) -> None:
        self.ctx = ctx
        self.settings = settings
        self.client = DropboxClient(ctx, settings, token_auth(ctx, settings))
        self.index = index_for(ctx, settings.template)
        self.placer = Placer(self.client, ctx.account.name, settings.on_change, self.index)
        #: Placing again after a conflict: the index was wrong there, so every name is looked up.
        self.replacer = Placer(self.client, ctx.account.name, settings.on_change, None)
        self.uploader = Uploader(ctx, client=self.client, chunk_size=settings.chunk_size,
                                 threshold=settings.upload_threshold)
        self.pool: ThreadPoolExecutor = upload_threads(ctx)
        self._cond = threading.Condition()
        self._waiting: list[_Waiting] = []
        self._busy = 0  #: uploads running and documents being placed again
        self._left: dict[int, int] = {}  #: id(work) → its files not settled yet
        self._placed_again: set[str] = set()  #: document ids placed again after a conflict
        #: Closed sessions whose commit was refused, by blob: committable to another name.
        self._spare: dict[str, list[str]] = {}
        self._input_done = False
        self._stopped = False
        self._failure: BaseException | None = None
        self._out: queue.Queue[Delivery | None] = queue.Queue()

    # -- the generator the core consumes ----------------------------------------------------------

    def run(self, requests: Iterable[PushRequest]) -> Iterator[Delivery]:
        feeder = threading.Thread(target=self._feed, args=(requests,), daemon=True,
                                  name=f"dropbox-feed-{self.ctx.account.name}")
        committer = threading.Thread(target=self._commit_loop, daemon=True,
                                     name=f"dropbox-commit-{self.ctx.account.name}")
        feeder.start()
        committer.start()
        try:
            while (delivery := self._out.get()) is not None:
                yield delivery
            if self._failure is not None:
                raise self._failure  # the feeder may be waiting for the core: not joined
            feeder.join()
        finally:
            with self._cond:
                self._stopped = True  # the core stopped listening (or all is done): wind down
                self._cond.notify_all()
            committer.join()
            self.placer.release()
            self.replacer.release()

    # -- documents in (the feeder thread) ---------------------------------------------------------

    def _feed(self, requests: Iterable[PushRequest]) -> None:
        try:
            for request in requests:
                if self._stopped:
                    continue  # drain: the core settles what it handed out and never saw reported
                if request.document.deleted:
                    self._out.put(apply_deletion(request, self.settings, self.client, self.ctx, self.index))
                    continue
                self._start(plan(order_of(request, self.settings), self.placer, self.ctx))
        except BaseException as exc:  # noqa: BLE001 - raised to the core from the generator
            self._fail(exc)
        finally:
            with self._cond:
                self._input_done = True
                self._cond.notify_all()

    def _start(self, work: DocumentWork) -> None:
        """Start every upload of ``work``, or deliver it now when it needs none."""
        tasks = work.uploads
        if not tasks:
            self._deliver(work)
            return
        with self._cond:
            self._left[id(work)] = len(tasks)
        for task in tasks:
            spare = self._spare_session(task)
            if spare is not None:
                self._ready(work, task, spare)
            elif task.ref.size > self.uploader.threshold or not self.settings.batch_commit:
                self._submit(self._upload_alone, work, task)
            else:
                self._submit(self._upload_to_session, work, task)

    def _spare_session(self, task: FileTask) -> str | None:
        with self._cond:
            sessions = self._spare.get(task.ref.sha256)
            return sessions.pop() if sessions else None

    def _submit(self, action: _Action, work: DocumentWork, task: FileTask) -> None:
        with self._cond:
            self._busy += 1
        self.pool.submit(self._guarded, action, work, task)

    def _guarded(self, action: _Action, work: DocumentWork, task: FileTask) -> None:
        try:
            action(work, task)
        except BaseException as exc:  # noqa: BLE001 - an auth failure, a bug: the push fails
            self._fail(exc)
        finally:
            with self._cond:
                self._busy -= 1
                self._wake_if_settled()

    def _upload_to_session(self, work: DocumentWork, task: FileTask) -> None:
        session = self.uploader.start_closed_session(task)
        if session is None:
            self._settled(work, [task])
        else:
            self._ready(work, task, session)

    def _upload_alone(self, work: DocumentWork, task: FileTask) -> None:
        self.uploader.upload_alone(task)
        self._settled(work, [task])

    def _ready(self, work: DocumentWork, task: FileTask, session: str) -> None:
        with self._cond:
            self._waiting.append(_Waiting(work, task, session, time.monotonic()))
            # The committer waits for a first file (then until it is due) or a full batch: a file
            # that changes neither leaves it asleep, rather than a wake-up per file.
            if len(self._waiting) == 1 or len(self._waiting) >= MAX_BATCH_ENTRIES:
                self._cond.notify_all()

    def _wake_if_settled(self) -> None:
        """After ``_busy`` went down (the caller holds ``_cond``): wake the committer only when
        everything may now be settled (a commit is then due at once, or the end)."""
        if self._busy == 0 and self._input_done:
            self._cond.notify_all()

    # -- commits (the committer thread) -----------------------------------------------------------

    def _commit_loop(self) -> None:
        try:
            while (batch := self._next_batch()) is not None:
                self._commit(batch)
        except BaseException as exc:  # noqa: BLE001 - raised to the core from the generator
            self._fail(exc)
        finally:
            self._out.put(None)

    def _next_batch(self) -> list[_Waiting] | None:
        """Wait until a commit is due; ``None`` once nothing is left to commit."""
        interval = self.settings.commit_interval
        with self._cond:
            while True:
                if self._stopped or self._failure is not None:
                    return None
                settled_all = self._input_done and self._busy == 0
                if self._waiting:
                    due = self._waiting[0].since + interval - time.monotonic()
                    if len(self._waiting) >= MAX_BATCH_ENTRIES or settled_all or due <= 0:
                        batch = self._waiting[:MAX_BATCH_ENTRIES]
                        del self._waiting[:MAX_BATCH_ENTRIES]
                        return batch
                    self._cond.wait(timeout=due)
                elif settled_all:
                    return None
                else:
                    self._cond.wait()

    def _commit(self, batch: list[_Waiting]) -> None:
        self.uploader.commit([(item.task, item.session) for item in batch])
        by_work: dict[int, tuple[DocumentWork, list[FileTask]]] = {}
        for item in batch:
            if item.task.name_taken:
                with self._cond:
                    self._spare.setdefault(item.task.ref.sha256, []).append(item.session)
            by_work.setdefault(id(item.work), (item.work, []))[1].append(item.task)
        for work, tasks in by_work.values():
            self._settled(work, tasks)

    # -- documents out ------------------------------------------------------------------------

    def _settled(self, work: DocumentWork, tasks: list[FileTask]) -> None:
        """``tasks`` of ``work`` have their outcome; once all have, deliver it (or place it again)."""
        with self._cond:
            left = self._left.get(id(work), 0) - len(tasks)
            if left > 0:
                self._left[id(work)] = left
                return
            self._left.pop(id(work), None)
            again = (any(task.name_taken for task in work.tasks)
                     and work.order.document_id not in self._placed_again)
            if again:
                self._placed_again.add(work.order.document_id)
                self._busy += 1  # placing again: the commit loop must not end meanwhile
        if not again:
            self._deliver(work)
            return
        try:
            note_outcomes(self.index, work)
            self._start(plan(work.order, self.replacer, self.ctx))
        finally:
            with self._cond:
                self._busy -= 1
                self._wake_if_settled()

    def _deliver(self, work: DocumentWork) -> None:
        note_outcomes(self.index, work)
        self._out.put(delivery_of(work, self.ctx))

    def _fail(self, exc: BaseException) -> None:
        with self._cond:
            if self._failure is None:
                self._failure = exc
            self._cond.notify_all()


def push_stream(requests: Iterable[PushRequest], ctx: Context) -> Iterator[Delivery]:
    settings = ctx.settings_as(DropboxSettings)
    if ctx.dry_run:
        for request in requests:
            yield planned(request, settings, ctx)
        return
    yield from StreamPush(ctx, settings).run(requests)
