"""The streaming push (hook API 4): uploads start as documents arrive, commits gather up to 1,000.

Request COUNTS are asserted, never times: a first sync of N files is one listing, N uploads and
ceil(N / 1,000) commits; a conflict re-commits the uploaded session instead of sending the bytes
again; a crash between upload and commit leaves nothing behind, and the next run delivers once.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from invoicesync import Delivery, DeliveryStatus, Document, PushRequest
from invoicesync.sandbox import Request, Response
from invoicesync_dropbox import stream as stream_module
from invoicesync_dropbox import uploads

FOLDER = "/Invoices/Acme BV/2026/purchase/"


def _count(env: Any, route: str) -> int:
    return int(env.app.count("POST", rf"^/2/files/{route}$"))


def _documents(env: Any, n: int) -> list[Document]:
    return [env.document(f"ST-{i:03d}", pdf=f"%PDF stream {i}".encode()) for i in range(n)]


def stream(env: Any, items: Iterable[Document | PushRequest], **context: Any) -> list[Delivery]:
    """Push through the hook as the core does for API 4: a lazy iterable, not a list."""
    requests = (i if isinstance(i, PushRequest) else PushRequest(document=i) for i in items)
    ctx = env.context(**context)
    try:
        return list(env.workspace.plugins.call("dropbox", "push_documents", account=env.account,
                                                requests=requests, ctx=ctx))
    finally:
        ctx.close()


@pytest.mark.parametrize(("n", "limit"), [(20, 1000), (5, 2)])
def test_a_first_sync_is_one_listing_n_uploads_and_a_commit_per_thousand(
        env: Any, monkeypatch: pytest.MonkeyPatch, n: int, limit: int) -> None:
    monkeypatch.setattr(stream_module, "MAX_BATCH_ENTRIES", limit)  # 1,000 on Dropbox
    documents = _documents(env, n)
    deliveries = stream(env, documents)
    assert [d.status for d in deliveries] == [DeliveryStatus.DELIVERED] * n
    commits = math.ceil(n / limit)
    assert _count(env, "upload_session/start") == n and _count(env, "upload_session/finish_batch_v2") == commits
    assert len(env.requests_to_dropbox()) == 1 + n + commits  # the listing, the uploads, the commits
    assert len(env.files()) == n
    # Nothing changed: a re-push with the ledger writes nothing and looks nothing up one by one
    # (it lists: /Invoices did not exist at the first listing, so no cursor was kept).
    before = len(env.requests_to_dropbox())
    by_id = {d.document_id: d for d in deliveries}
    again = stream(env, [PushRequest(document=doc, previous=by_id[doc.id]) for doc in documents])
    assert [d.status for d in again] == [DeliveryStatus.UNCHANGED] * n
    assert env.requests_to_dropbox()[before:] == ["/2/files/list_folder"]


def test_an_upload_starts_before_the_input_ends(env: Any) -> None:
    """The second document is handed over only once the first one's bytes reached Dropbox: a push
    that waited for its whole input before uploading would never get there (an event, not a timer)."""
    documents = _documents(env, 2)
    started = threading.Event()
    original = env.app.handle

    def handle(request: Request) -> Response:
        response: Response = original(request)
        if request.path == "/2/files/upload_session/start":
            started.set()
        return response

    env.app.handle = handle

    def slow_source() -> Iterator[Document]:
        yield documents[0]
        started.wait(30)  # bounded only so a broken push fails instead of hanging
        yield documents[1]

    deliveries = stream(env, slow_source())
    assert started.is_set()
    assert [d.status for d in deliveries] == [DeliveryStatus.DELIVERED] * 2
    assert _count(env, "upload_session/finish_batch_v2") == 1  # and still one commit for both


def test_a_slow_input_is_committed_after_commit_interval(env: Any) -> None:
    """While documents trickle in, what was uploaded is committed once it has waited
    ``commit_interval``: the first delivery does not wait for the input to end."""
    env.configure(commit_interval=0.2)
    documents = _documents(env, 2)
    committed = threading.Event()
    original = env.app.handle

    def handle(request: Request) -> Response:
        response: Response = original(request)
        if request.path == "/2/files/upload_session/finish_batch_v2":
            committed.set()
        return response

    env.app.handle = handle

    def slow_source() -> Iterator[Document]:
        yield documents[0]
        committed.wait(30)
        yield documents[1]

    deliveries = stream(env, slow_source())
    assert committed.is_set() and [d.status for d in deliveries] == [DeliveryStatus.DELIVERED] * 2
    assert _count(env, "upload_session/finish_batch_v2") == 2


@pytest.mark.parametrize("content", [b"someone else's file", b"%PDF stream 1"], ids=["different", "identical"])
def test_a_name_taken_after_the_listing(env: Any, content: bytes) -> None:
    """A different file at our name is kept and ours goes to `` (2)`` from the session already
    uploaded (a refused commit leaves it committable): no byte is sent twice. The same content
    is taken as ours, not copied."""
    documents = _documents(env, 2)
    taken = FOLDER + "2026-01-15_Supplier NV_ST-001.pdf"
    original = env.app.handle

    def handle(request: Request) -> Response:
        response: Response = original(request)
        if request.path == "/2/files/list_folder":
            env.occupy(taken, content)
        return response

    env.app.handle = handle
    deliveries = {d.document_id: d for d in stream(env, documents)}
    mine = deliveries[documents[1].id]
    assert mine.status in (DeliveryStatus.DELIVERED, DeliveryStatus.UNCHANGED), mine.message
    assert env.stored(taken) == content  # never overwritten
    assert _count(env, "upload_session/start") == 2  # the conflicting session was committed again
    if content == b"%PDF stream 1":
        assert mine.target_path == taken and len(env.files()) == 2
    else:
        assert mine.target_path == taken.replace(".pdf", " (2).pdf")
        assert env.stored(mine.target_path) == b"%PDF stream 1" and len(env.files()) == 3
        assert _count(env, "upload_session/finish_batch_v2") == 2


class _Crash(BaseException):
    """The process dies: nothing after this point runs."""


def test_a_crash_between_upload_and_commit_leaves_nothing_and_the_next_run_delivers_once(
        env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    documents = _documents(env, 4)

    def crash(self: Any, started: Any) -> None:
        raise _Crash

    with monkeypatch.context() as patch:
        patch.setattr(uploads.Uploader, "commit", crash)
        with pytest.raises(_Crash):
            stream(env, documents)
    assert _count(env, "upload_session/start") == 4 and env.files() == []  # uploaded, never committed
    deliveries = stream(env, documents)  # the ledger only has the intents: no previous delivery
    assert [d.status for d in deliveries] == [DeliveryStatus.DELIVERED] * 4
    assert sorted(e.display for e in env.files()) == sorted(d.target_path for d in deliveries)


def test_a_dry_run_stream_plans_and_sends_nothing(env: Any) -> None:
    deliveries = stream(env, _documents(env, 3), dry_run=True)
    assert [d.status for d in deliveries] == [DeliveryStatus.PLANNED] * 3
    assert all(d.target_path and d.target_path.startswith(FOLDER) for d in deliveries)
    assert env.requests_to_dropbox() == []
