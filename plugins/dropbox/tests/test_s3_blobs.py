"""The Dropbox target reading its files from an S3 blob store (moto's server): a chunked upload
session reads ranges through the store's seekable reader, and a resumed one seeks to its offset."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from invoicesync import DeliveryStatus, PushRequest
from invoicesync.state._blobs_s3 import S3BlobStore
from invoicesync_dropbox.content_hash import content_hash_of_chunks

MIB = 1024 * 1024


def generated(size: int) -> Iterator[bytes]:
    block = hashlib.sha256(b"s3 blobs").digest() * (MIB // 32)
    for start in range(0, size, MIB):
        yield block[: min(MIB, size - start)]


def test_an_upload_session_resumes_at_its_offset_reading_from_s3(
        s3_blob_url: str, monkeypatch: pytest.MonkeyPatch, make_env: Callable[..., Any]) -> None:
    monkeypatch.setenv("INVOICESYNC_BLOB_URL", s3_blob_url)
    env = make_env()
    assert isinstance(env.workspace.blobs, S3BlobStore)
    env.configure(upload_threshold=4 * MIB, chunk_size=4 * MIB)
    env.workspace.sleep = lambda seconds: None
    size = 18 * MIB + 5
    doc = env.document("BIG-S3", pdf=generated(size))
    env.app.add_fault({"action": "drop", "method": "POST", "path": r"append_v2$", "after": 2, "times": None})
    [failed] = env.push([doc])
    assert failed.status is DeliveryStatus.FAILED

    env.app.clear_faults()
    [delivery] = env.push([PushRequest(document=doc, previous=failed)])
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert delivery.extra["files"][0]["resumed_from"] == 12 * MIB
    entry = env.app.namespace.get(delivery.target_path)
    assert entry.size == size and entry.content_hash == content_hash_of_chunks(generated(size))
