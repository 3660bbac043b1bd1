"""Large files: chunked upload sessions, resumed after an interruption, in bounded memory."""

from __future__ import annotations

import hashlib
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from invoicesync import DeliveryStatus, PushRequest
from invoicesync_dropbox.content_hash import content_hash_of_chunks

MIB = 1024 * 1024


def generated(size: int, seed: int = 1) -> Iterator[bytes]:
    """Deterministic, incompressible-looking bytes made on the fly, 1 MiB at a time."""
    block = hashlib.sha256(str(seed).encode()).digest() * (MIB // 32)
    for start in range(0, size, MIB):
        yield block[: min(MIB, size - start)]


def _small_chunks(env: Any) -> None:
    env.configure(upload_threshold=4 * MIB, chunk_size=4 * MIB)


def test_a_large_file_goes_through_a_chunked_session(env: Any) -> None:
    _small_chunks(env)
    size = 10 * MIB + 123
    [delivery] = env.push([env.document("BIG-1", pdf=generated(size))])
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert delivery.content_hash == content_hash_of_chunks(generated(size))
    assert env.app.count("POST", r"upload_session/start$") == 1
    assert env.app.count("POST", r"upload_session/append_v2$") == 2
    assert env.app.count("POST", r"upload_session/finish$") == 1
    assert env.app.count("POST", r"/2/files/upload$") == 0
    entry = env.app.namespace.get(delivery.target_path)
    assert entry.size == size and entry.content_hash == delivery.content_hash
    assert env.context().kv.get(f"upload-session:{env.document('BIG-1', pdf=generated(size)).pdf.sha256}") is None


def test_a_lost_append_answer_is_resent_at_its_offset_and_the_server_count_wins(env: Any) -> None:
    _small_chunks(env)
    size = 20 * MIB
    doc = env.document("BIG-2", pdf=generated(size, seed=2))
    # The third append reaches the server, but its answer is lost. An append names its offset, so
    # it is resent; the server already has those bytes and says so (incorrect_offset).
    env.app.add_fault({"action": "drop_after", "method": "POST", "path": r"append_v2$", "after": 2, "times": 1})
    [delivery] = env.push([doc])
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert env.app.count("POST", r"upload_session/start$") == 1
    assert ("POST", "/2/files/upload_session/append_v2", 409) in env.app.requests
    entry = env.app.namespace.get(delivery.target_path)
    assert entry.size == size and entry.content_hash == content_hash_of_chunks(generated(size, seed=2))


def test_an_interrupted_upload_resumes_from_its_offset_not_from_zero(env: Any) -> None:
    _small_chunks(env)
    env.workspace.sleep = lambda seconds: None
    size = 20 * MIB
    doc = env.document("BIG-2", pdf=generated(size, seed=2))
    # The third append never gets through this run (the connection drops every time).
    env.app.add_fault({"action": "drop", "method": "POST", "path": r"append_v2$", "after": 2, "times": None})
    [failed] = env.push([doc])
    assert failed.status is DeliveryStatus.FAILED
    stored = env.context().kv.get(f"upload-session:{doc.pdf.sha256}")
    assert stored["offset"] == 12 * MIB  # start + 2 confirmed appends
    assert env.app.namespace.get("/Invoices/Acme BV/2026/purchase/2026-01-15_Supplier NV_BIG-2.pdf") is None

    env.app.clear_faults()
    [delivery] = env.push([PushRequest(document=doc, previous=failed)])
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert delivery.extra["files"][0]["resumed_from"] == 12 * MIB
    assert env.app.count("POST", r"upload_session/start$") == 1  # never restarted from zero
    appended = [r for r in env.app.requests if r[1].endswith("append_v2") and r[2] == 200]
    assert len(appended) == 2 + 2  # first run: 2 answered; second run: the last 8 MiB
    entry = env.app.namespace.get(delivery.target_path)
    assert entry.size == size and entry.content_hash == content_hash_of_chunks(generated(size, seed=2))


def test_an_expired_session_starts_over(env: Any) -> None:
    _small_chunks(env)
    doc = env.document("BIG-3", pdf=generated(9 * MIB, seed=3))
    env.context().kv.set(f"upload-session:{doc.pdf.sha256}",
                         {"session_id": "pid_upload_session:gone", "offset": 4 * MIB, "started": time.time()})
    [delivery] = env.push([doc])
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert env.app.count("POST", r"upload_session/start$") == 1


@pytest.mark.slow
def test_a_file_over_150_mib_streams_through_a_session_in_bounded_memory(env: Any) -> None:
    size = 150 * MIB + 5 * MIB + 7  # over the files/upload limit
    env.configure(upload_threshold=150 * MIB, chunk_size=16 * MIB)
    doc = env.document("HUGE", pdf=generated(size, seed=4))
    tracemalloc.start()
    try:
        [delivery] = env.push([doc])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert env.app.count("POST", r"/2/files/upload$") == 0
    assert env.app.count("POST", r"upload_session/append_v2$") == 9
    entry = env.app.namespace.get(delivery.target_path)
    assert entry.size == size and entry.content_hash == delivery.content_hash
    # client and sandbox run in this process: neither may hold the file (or one 16 MiB chunk) whole
    assert peak < 12 * MIB, f"peak traced memory {peak / MIB:.1f} MiB"
