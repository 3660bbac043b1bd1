"""How bytes reach Dropbox, all streamed from the blob store and all hash-checked.

- a small file: one closed ``upload_session/start`` (``start_closed_session``), committed with
  others by a single ``finish_batch_v2`` (``commit``): one namespace write operation instead of
  many, which is what avoids ``too_many_write_operations`` lock contention. With ``batch_commit``
  off, a ``files/upload`` instead (``upload_alone``);
- a large file: ``upload_session/start`` + ``append_v2`` + ``finish`` in chunks, resumable across
  runs from the session id and offset kept in ``ctx.kv`` (``upload_alone``).

``stream.py`` decides when each goes. After a write whose outcome is unknown (``OutcomeUnknown``)
the path is looked up; if it holds our ``content_hash`` the write happened, and nothing is sent again.

A file refused for lock contention (``too_many_write_operations``, on the whole request or on
one entry of a batch commit) or still rate limited after the core client's retries is marked
``transient``: the document is worth offering again in the same run.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from invoicesync import Context, FileRef, FileRole, OutcomeUnknown, RateLimited, RemoteError

from .client import DropboxClient, Metadata, commit_info, file_hash, file_size
from .content_hash import content_hash_of_chunks, read_range
from .errors import DropboxApiError, describe, tag_chain

#: Sessions live 7 days on Dropbox; a stored one older than this is not worth trying.
SESSION_MAX_AGE = 6 * 24 * 3600
#: incorrect_offset corrections accepted for one file before it is reported as failed.
MAX_OFFSET_CORRECTIONS = 5
#: Files whose bytes are sent at once for one account, all its pushes together (sessions and
#: large files); commits stay one at a time.
PARALLEL_UPLOADS = 8
#: ``finish_batch_v2`` takes at most 1,000 entries.
MAX_BATCH_ENTRIES = 1000
#: Failure tags Dropbox uses for "try again shortly": namespace lock contention and throttling.
TRANSIENT_TAGS = frozenset({"too_many_write_operations", "too_many_requests"})

# Dropbox asks for batch commits of one account to run one after another.
_batch_locks: dict[str, threading.Lock] = {}
_batch_locks_guard = threading.Lock()


@dataclass
class FileTask:
    """One file to deliver, and what happened to it."""

    role: FileRole
    ref: FileRef
    path: str
    content_hash: str
    mode: dict[str, str] | None  #: None: already there, nothing to write
    metadata: Metadata | None = None
    written: bool = False
    error: str | None = None
    #: The write was refused because the name was taken meanwhile (by another process): worth
    #: placing again, unlike every other failure.
    name_taken: bool = False
    #: The failure is lock contention or throttling: the same write may well pass in a moment.
    transient: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    #: How the ledger knows this file on a later run (``naming.file_keys``); the role by default.
    key: str = ""

    def __post_init__(self) -> None:
        self.key = self.key or self.role.value

    def fail(self, message: str, tags: list[str] | None = None, *, rate_limited: bool = False) -> None:
        self.error = f"{self.role.value} {self.path}: {message}"
        self.name_taken = bool(tags) and "conflict" in (tags or []) and (self.mode or {}).get(".tag") == "add"
        self.transient = rate_limited or not TRANSIENT_TAGS.isdisjoint(tags or [])

    def fail_with(self, exc: BaseException) -> None:
        self.fail(_reason(exc), _tags(exc), rate_limited=isinstance(exc, RateLimited))


class Uploader:
    def __init__(self, ctx: Context, client: DropboxClient, *, chunk_size: int, threshold: int) -> None:
        self.ctx = ctx
        self.client = client
        self.chunk_size = chunk_size
        self.threshold = threshold

    # -- dispatch ----------------------------------------------------------------------------

    def start_closed_session(self, task: FileTask) -> str | None:
        """A small file's bytes in one closed session, for a later ``commit``; ``None`` when that
        failed (recorded on the task)."""
        size = task.ref.size
        try:
            return self.client.session_start(self.body(task.ref, 0, size), size, task.content_hash, close=True)
        except (RemoteError, OSError) as exc:
            task.fail_with(exc)
            return None

    def upload_alone(self, task: FileTask) -> None:
        """A file that is not an entry of a batch commit: a large one (its own resumable session)
        or, with ``batch_commit`` off, a ``files/upload``. The outcome is recorded on the task."""
        if task.ref.size > self.threshold:
            self.guard(task, self.upload_large)
        else:
            with self.batch_lock():  # each files/upload is a commit: one at a time
                self.guard(task, self.upload_simple)

    def guard(self, task: FileTask, action: Callable[[FileTask], None]) -> None:
        try:
            action(task)
        except (RemoteError, OSError) as exc:
            task.fail_with(exc)

    # -- bodies ------------------------------------------------------------------------------

    def body(self, ref: FileRef, offset: int, length: int) -> Callable[[], Iterator[bytes]]:
        """A re-callable body: every retry re-reads the range from the blob store."""
        def chunks() -> Iterator[bytes]:
            with self.ctx.blobs.open(ref.sha256) as handle:
                yield from read_range(handle, offset, length)
        return chunks

    def _hash(self, ref: FileRef, offset: int, length: int) -> str:
        with self.ctx.blobs.open(ref.sha256) as handle:
            return content_hash_of_chunks(read_range(handle, offset, length))

    # -- outcomes ----------------------------------------------------------------------------

    def _accept(self, task: FileTask, meta: Metadata) -> None:
        # content_hash is optional in FileMetadata: without it, the server already checked the
        # content_hash we sent with the bytes, so the size is what is left to compare.
        stored_hash = file_hash(meta)
        if (stored_hash is not None and stored_hash != task.content_hash) or file_size(meta) != task.ref.size:
            raise DropboxApiError(
                f"Dropbox stored {meta.get('size')} bytes hashing to {meta.get('content_hash')}, "
                f"but {task.ref.size} bytes hashing to {task.content_hash} were sent", status=200)
        task.metadata = meta
        task.written = True

    def _confirm(self, task: FileTask, cause: OutcomeUnknown) -> None:
        """The write may or may not have happened: look, rather than write again."""
        meta = self.client.get_metadata(task.path)
        if meta is not None and file_hash(meta) == task.content_hash:
            self.ctx.log.info("dropbox: %s was written although the answer was lost", task.path)
            self._accept(task, meta)
            return
        raise cause

    # -- the three ways ----------------------------------------------------------------------

    def upload_simple(self, task: FileTask) -> None:
        assert task.mode is not None
        size = task.ref.size
        try:
            meta = self.client.upload(task.path, task.mode, self.body(task.ref, 0, size), size, task.content_hash)
        except OutcomeUnknown as exc:
            if exc.status is None or self.client.get_metadata(task.path) is not None:
                self._confirm(task, exc)
                return
            # The server answered (a 5xx), so it is done with the request, and the path is still
            # empty: nothing was written, and sending it once more cannot make a second copy.
            meta = self.client.upload(task.path, task.mode, self.body(task.ref, 0, size), size, task.content_hash)
        self._accept(task, meta)

    def commit(self, started: list[tuple[FileTask, str]]) -> None:
        """One ``finish_batch_v2`` for closed sessions (at most ``MAX_BATCH_ENTRIES``); each
        task's outcome is recorded on it. A refused entry leaves its session committable again."""
        if not started:
            return
        entries = [{"cursor": {"session_id": session, "offset": task.ref.size},
                    "commit": commit_info(task.path, task.mode or {})} for task, session in started]
        try:
            with self.batch_lock():
                results = self.client.finish_batch(entries)
        except OutcomeUnknown as exc:
            for task, _ in started:
                self.guard(task, functools.partial(self._confirm, cause=exc))
            return
        except RemoteError as exc:
            for task, _ in started:
                task.fail_with(exc)
            return
        for (task, _), result in zip(started, results, strict=True):
            if result.get(".tag") == "success":
                self.guard(task, functools.partial(self._accept, meta=result))
            else:
                # One entry refused: too_many_write_operations may come as the entry's own tag or
                # inside its WriteError (path/too_many_write_operations); tag_chain finds both.
                failure = result.get("failure")
                task.fail(describe(tag_chain(failure), failure), tag_chain(failure))

    def batch_lock(self) -> threading.Lock:
        with _batch_locks_guard:
            return _batch_locks.setdefault(self.ctx.account.name, threading.Lock())

    def upload_large(self, task: FileTask) -> None:
        """Chunked session upload that survives interruption: the session id and the offset the
        server confirmed are stored after every chunk, and a later run carries on from there."""
        assert task.mode is not None
        ref, size = task.ref, task.ref.size
        key = f"upload-session:{ref.sha256}"
        stored = self.ctx.kv.get(key)
        session: str | None = None
        offset = 0
        if isinstance(stored, dict) and time.time() - float(stored.get("started", 0)) < SESSION_MAX_AGE:
            session, offset = str(stored["session_id"]), int(stored["offset"])
            task.extra["resumed_from"] = offset
        started = float(stored["started"]) if session and isinstance(stored, dict) else time.time()

        def save() -> None:
            self.ctx.kv.set(key, {"session_id": session, "offset": offset, "started": started})

        corrections = 0
        restarted = session is None
        while True:
            try:
                if session is None:
                    length = min(self.chunk_size, size)
                    session = self.client.session_start(self.body(ref, 0, length), length,
                                                        self._hash(ref, 0, length), close=False)
                    offset, started = length, time.time()
                    save()
                while offset < size:
                    length = min(self.chunk_size, size - offset)
                    self.client.session_append(session, offset, self.body(ref, offset, length), length,
                                               self._hash(ref, offset, length))
                    offset += length
                    save()
                with self.batch_lock():
                    meta = self.client.session_finish(session, offset, commit_info(task.path, task.mode),
                                                      b"", 0, "")
            except OutcomeUnknown as exc:
                if offset >= size:  # it was the finish: the file may be committed already
                    self._confirm(task, exc)
                    self.ctx.kv.delete(key)
                    return
                raise
            except DropboxApiError as exc:
                correct = exc.correct_offset
                if correct is not None and corrections < MAX_OFFSET_CORRECTIONS and 0 <= correct <= size:
                    # The server got more (or fewer) bytes than we knew: carry on from its count.
                    corrections += 1
                    offset = correct
                    save()
                    continue
                if _session_gone(exc) and not restarted:
                    # Expired or unknown session: the only way on is a fresh one.
                    restarted, session, offset = True, None, 0
                    self.ctx.kv.delete(key)
                    continue
                raise
            self._accept(task, meta)
            self.ctx.kv.delete(key)
            return


def upload_threads(ctx: Context) -> ThreadPoolExecutor:
    """The account's upload threads for this run, shared by all its pushes."""
    return ctx.resource(("dropbox", "upload-threads"), lambda: _UploadThreads(ctx.account.name)).executor


class _UploadThreads:
    """The run's upload threads of one account (``ctx.resource``: shut down when the run ends)."""

    def __init__(self, account: str) -> None:
        self.executor = ThreadPoolExecutor(max_workers=PARALLEL_UPLOADS, thread_name_prefix=f"dropbox-upload-{account}")

    def close(self) -> None:
        self.executor.shutdown(wait=True)


def _session_gone(exc: DropboxApiError) -> bool:
    tags = exc.tags
    return bool(tags) and tags[-1] == "not_found" and tags[0] in ("not_found", "lookup_failed")


def _tags(exc: BaseException) -> list[str]:
    return exc.tags if isinstance(exc, DropboxApiError) else []


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return f"could not read the file: {exc}"
    return str(exc)
