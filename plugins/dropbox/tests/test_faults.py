"""Faults: rate limits (429 JSON and plain text, Retry-After), 5xx, and namespace lock contention
(``too_many_write_operations``) both injected and provoked for real by concurrent writers."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from invoicesync import DeliveryStatus
from invoicesync_dropbox.sandbox.store import TooManyWritesError


def _pdf(i: int) -> bytes:
    return f"%PDF fault {i}".encode()


def test_429_with_retry_after_is_honoured(env: Any) -> None:
    env.configure(batch_commit=False)
    env.app.add_fault("status:status=429,code=too_many_requests,path=/2/files/upload$,headers.Retry-After=1")
    started = time.monotonic()
    [delivery] = env.push([env.document("F-1", pdf=_pdf(1))])
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert time.monotonic() - started >= 1.0  # waited as told, not an immediate resend
    assert [s for m, p, s in env.app.requests if p == "/2/files/upload"] == [429, 200]


def test_retry_after_only_in_the_json_body_is_honoured(env: Any) -> None:
    env.configure(batch_commit=False)
    body = {"error_summary": "too_many_requests/..", "error": {"reason": {".tag": "too_many_requests"},
                                                                "retry_after": 1}}
    env.app.add_fault({"status": 429, "path": r"/2/files/upload$", "body": body})
    started = time.monotonic()
    [delivery] = env.push([env.document("F-2", pdf=_pdf(2))])
    assert delivery.status is DeliveryStatus.DELIVERED
    assert time.monotonic() - started >= 1.0


def test_plain_text_429_is_retried(env: Any) -> None:
    env.app.add_fault("status:status=429,code=text,path=finish_batch_v2$")
    deliveries = env.push([env.document("F-3", pdf=_pdf(3)), env.document("F-4", pdf=_pdf(4))])
    assert [d.status for d in deliveries] == [DeliveryStatus.DELIVERED] * 2
    assert env.app.count("POST", "finish_batch_v2$") == 2


def test_server_errors_back_off_and_retry(env: Any) -> None:
    """A 5xx to a write leaves its outcome unknown: the path is looked up (a read, retried through
    its own 500) and, found empty, the upload is sent once more."""
    env.configure(batch_commit=False)
    env.app.add_fault({"status": 503, "path": r"/2/files/upload$", "times": 1})
    env.app.add_fault({"status": 500, "path": r"/2/files/get_metadata$", "times": 1})
    [delivery] = env.push([env.document("F-5", pdf=_pdf(5))])
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    calls = [(p, s) for m, p, s in env.app.requests if p in ("/2/files/upload", "/2/files/get_metadata")]
    after_the_503 = calls[calls.index(("/2/files/upload", 503)) + 1:]
    # Looked (through the read's own 500), then sent. The planning look was the folder listing.
    assert after_the_503 == [("/2/files/get_metadata", 500), ("/2/files/get_metadata", 409),
                             ("/2/files/upload", 200)]


def test_too_many_write_operations_inside_a_409_is_retried(env: Any) -> None:
    env.configure(batch_commit=False)
    env.app.add_fault({"status": 409, "path": r"/2/files/upload$", "code": "path/too_many_write_operations"})
    [delivery] = env.push([env.document("F-6", pdf=_pdf(6))])
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert [s for m, p, s in env.app.requests if p == "/2/files/upload"] == [409, 200]


def test_persistent_rate_limit_fails_documents_not_the_run(env: Any) -> None:
    env.configure(batch_commit=False)
    env.app.add_fault({"status": 429, "path": r"/2/files/upload$", "times": None, "code": "too_many_write_operations"})
    deliveries = env.push([env.document("F-7", pdf=_pdf(7)), env.document("F-8", pdf=_pdf(8))])
    assert [d.status for d in deliveries] == [DeliveryStatus.FAILED] * 2
    assert all("rate limited" in (d.message or "") for d in deliveries)


def test_real_lock_contention_between_concurrent_writers_is_survived(make_env: Any) -> None:
    """Two writers on one Dropbox that do not share a commit lock (two accounts, as two installs
    would be): each push's batch commit is one namespace write, and the one refused with
    too_many_write_operations (a 429) is committed again after Retry-After."""
    # One write at a time. The first writer keeps the namespace lock until the other writer has
    # been refused (an event, not a pause), so the two always collide, however loaded the machine.
    env = make_env(write_limit=1, retry_after=1)
    other = dataclasses.replace(env, account=env.account.model_copy(update={"name": "dbx-other"}))
    for key, value in env.app.account_secrets().items():
        env.workspace.secrets(other.account.name).set(key, value)
    namespace = env.app.namespace
    refused, first_holder = threading.Event(), threading.Lock()
    real_slot = namespace.write_slot

    @contextmanager
    def slot() -> Iterator[None]:
        try:
            with real_slot():
                if first_holder.acquire(blocking=False):
                    refused.wait(30)  # bounded only so a broken run fails instead of hanging
                yield
        except TooManyWritesError:
            refused.set()
            raise

    namespace.write_slot = slot
    results: list[Any] = []

    def worker(n: int, writer: Any) -> None:
        results.extend(writer.push([env.document(f"W-{n}-{i}", pdf=f"%PDF {n} {i}".encode()) for i in range(2)]))

    threads = [threading.Thread(target=worker, args=(n, writer)) for n, writer in enumerate((env, other))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert refused.is_set() and namespace.contended >= 1  # the sandbox did refuse some writes...
    assert [d.status for d in results] == [DeliveryStatus.DELIVERED] * 4  # ...and every one got through
    assert len([e for e in env.app.namespace.entries.values() if e.kind == "file"]) == 4
    assert [s for m, p, s in env.app.requests if p.endswith("finish_batch_v2")].count(429) >= 1
