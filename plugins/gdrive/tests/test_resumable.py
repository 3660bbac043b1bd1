"""Resumable uploads: 256 KiB chunks, 308 + Range, resuming a stored session, bounded memory."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from invoicesync import DeliveryStatus
from invoicesync_gdrive.client import DriveClient

MIB = 1024 * 1024


def _data(size: int, seed: int = 1) -> Iterator[bytes]:
    block = hashlib.sha256(str(seed).encode()).digest() * (MIB // 32)
    while size > 0:
        piece = block[: min(size, MIB)]
        size -= len(piece)
        yield piece


def test_large_file_goes_up_in_whole_chunks(drive: Any) -> None:
    size = 3 * MIB + 12345  # threshold 1 MiB, chunk 512 KiB → 7 chunks, the last one short
    doc = drive.document(1, _data(size))
    [delivery] = drive.push([doc])
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert drive.app.count("POST", r"^/upload/") == 1  # the session, not a multipart body
    assert drive.app.count("PUT", r"^/upload/") == 7
    file = drive.app.find_path("invoicesync/" + delivery.target_path)
    digest = hashlib.md5(usedforsecurity=False)
    for chunk in _data(size):
        digest.update(chunk)
    assert file.size == size and file.md5 == digest.hexdigest()
    assert drive.app.uploads.bytes_received == size
    assert drive.workspace.state.kv(drive.account.name).get(f"upload:{doc.id}:pdf") is None  # session done


class _Crash(BaseException):
    """The process dying mid-upload (not an error our code could catch and handle)."""


def test_interrupted_upload_resumes_with_a_status_query(drive: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    size = 4 * MIB
    doc = drive.document(2, _data(size, seed=2))
    real_put = DriveClient.put_chunk
    sent: list[int] = []

    def dying_put(self: DriveClient, session: str, start: int, end: int, total: int, reader: Any) -> Any:
        if len(sent) == 3:
            raise _Crash
        sent.append(end - start)
        return real_put(self, session, start, end, total, reader)

    monkeypatch.setattr(DriveClient, "put_chunk", dying_put)
    with pytest.raises(_Crash):
        drive.push([doc])
    assert drive.app.uploads.bytes_received == 3 * 512 * 1024
    assert drive.workspace.state.kv(drive.account.name).get(f"upload:{doc.id}:pdf")  # the session URI was kept
    monkeypatch.setattr(DriveClient, "put_chunk", real_put)

    [delivery] = drive.push([doc])
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert drive.app.uploads.bytes_received == size  # nothing sent twice
    assert drive.app.count("POST", r"^/upload/") == 1  # the same session, not a new one
    assert len(drive.files_named(delivery.target_path.rsplit("/", 1)[1])) == 1


def test_expired_session_starts_over(drive: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = drive.document(3, _data(2 * MIB, seed=3))
    real_put = DriveClient.put_chunk
    calls = 0

    def dying_put(self: DriveClient, *args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise _Crash
        return real_put(self, *args)

    monkeypatch.setattr(DriveClient, "put_chunk", dying_put)
    with pytest.raises(_Crash):
        drive.push([doc])
    drive.app.uploads.sessions.clear()  # the server forgot the session (expired)
    [delivery] = drive.push([doc])
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert drive.app.count("POST", r"^/upload/") == 2


def test_large_changed_file_replaces_content_with_a_resumable_patch(drive: Any) -> None:
    [first] = drive.push([drive.document(4, _data(2 * MIB, seed=4))])
    [second] = drive.push([drive.document(4, _data(2 * MIB, seed=5))])
    assert second.status is DeliveryStatus.DELIVERED and second.target_id == first.target_id
    assert drive.app.count("PATCH", r"^/upload/drive/v3/files/") == 1


@pytest.mark.slow
def test_big_upload_streams_with_bounded_memory(drive: Any) -> None:
    size = 48 * MIB
    drive.configure(resumable_threshold=4 * MIB, chunk_size=8 * MIB)
    doc = drive.document(5, _data(size, seed=6))
    tracemalloc.start()
    try:
        [delivery] = drive.push([doc])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert peak < 12 * MIB, f"peak {peak / MIB:.1f} MiB for a {size / MIB:.0f} MiB upload"
    file = drive.app.find_path("invoicesync/" + delivery.target_path)
    assert file.size == size and os.path.getsize(drive.app.store.content_path(file.id)) == size
