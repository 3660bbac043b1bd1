"""For blob store tests — looking inside a store: what is visible under content keys, what is left in tmp."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

from invoicesync.state import BlobStore, FolderBlobStore

MiB = 1024 * 1024


def pattern(size: int, seed: int = 0, chunk: int = MiB) -> Iterator[bytes]:
    """``size`` deterministic, non-repeating bytes in ``chunk``-sized pieces (any process, any chunk
    size makes the same bytes)."""
    position = 0
    while position < size:
        block, offset = divmod(position, MiB)
        whole = hashlib.sha256(b"%d:%d" % (seed, block)).digest() * (MiB // 32)
        piece = whole[offset:offset + min(chunk, size - position)]
        yield piece
        position += len(piece)


def sha_of(chunks: Iterator[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def visible(store: BlobStore) -> list[str]:
    """The sha256 of every blob a reader can see."""
    if isinstance(store, FolderBlobStore):
        root = str(store.root)
        return sorted(shard + name for shard in os.listdir(root) if shard != "tmp"
                      for name in os.listdir(os.path.join(root, shard)))
    from invoicesync.state._blobs_s3 import S3BlobStore

    assert isinstance(store, S3BlobStore)
    pages = store.client.get_paginator("list_objects_v2").paginate(Bucket=store.bucket, Prefix=store.prefix)
    keys = [o["Key"][len(store.prefix):] for page in pages for o in page.get("Contents", [])]
    return sorted(key.replace("/", "") for key in keys if not key.startswith("tmp/"))


def leftovers(store: BlobStore) -> list[str]:
    """Names under tmp/: temp files, or (S3) temporary objects and unfinished multipart uploads."""
    if isinstance(store, FolderBlobStore):
        return sorted(os.listdir(store.root / "tmp"))
    from invoicesync.state._blobs_s3 import S3BlobStore

    assert isinstance(store, S3BlobStore)
    objects = store.client.list_objects_v2(Bucket=store.bucket, Prefix=store.tmp_prefix).get("Contents", [])
    uploads = store.client.list_multipart_uploads(Bucket=store.bucket, Prefix=store.tmp_prefix).get("Uploads", [])
    return sorted(item["Key"].rsplit("/", 1)[-1] for item in [*objects, *uploads])


def leave(store: BlobStore, name: str) -> None:
    """Make what a writer named ``name`` leaves while writing: a temp file, or an unfinished upload."""
    if isinstance(store, FolderBlobStore):
        (store.root / "tmp" / name).write_bytes(b"half a PDF")
        return
    from invoicesync.state._blobs_s3 import S3BlobStore

    assert isinstance(store, S3BlobStore)
    store.client.create_multipart_upload(Bucket=store.bucket, Key=store.tmp_prefix + name)
