"""For blob store tests — looking inside a store: what is visible under content keys, what is left in tmp."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Iterator

from invoicesync.state import BlobStore, FolderBlobStore, HomeBlobStore

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
    """The sha256 of every blob a reader can see (looked at from outside the store: a fresh
    connection to the inline file, a listing of the folders)."""
    if isinstance(store, HomeBlobStore):
        return sorted(inline(store) + visible(store.folder))
    if isinstance(store, FolderBlobStore):
        root = str(store.root)
        return sorted(shard + name for shard in os.listdir(root) if len(shard) == 2
                      for name in os.listdir(os.path.join(root, shard)))
    from invoicesync.state._blobs_s3 import S3BlobStore

    assert isinstance(store, S3BlobStore)
    pages = store.client.get_paginator("list_objects_v2").paginate(Bucket=store.bucket, Prefix=store.prefix)
    keys = [o["Key"][len(store.prefix):] for page in pages for o in page.get("Contents", [])]
    return sorted(key.replace("/", "") for key in keys if not key.startswith("tmp/"))


def leftovers(store: BlobStore) -> list[str]:
    """Names under tmp/: temp files, or (S3) temporary objects and unfinished multipart uploads."""
    if isinstance(store, HomeBlobStore):
        store = store.folder
    if isinstance(store, FolderBlobStore):
        return sorted(os.listdir(store.root / "tmp"))
    from invoicesync.state._blobs_s3 import S3BlobStore

    assert isinstance(store, S3BlobStore)
    objects = store.client.list_objects_v2(Bucket=store.bucket, Prefix=store.tmp_prefix).get("Contents", [])
    uploads = store.client.list_multipart_uploads(Bucket=store.bucket, Prefix=store.tmp_prefix).get("Uploads", [])
    return sorted(item["Key"].rsplit("/", 1)[-1] for item in [*objects, *uploads])


def leave(store: BlobStore, name: str) -> None:
    """Make what a writer named ``name`` leaves while writing: a temp file, or an unfinished upload."""
    if isinstance(store, HomeBlobStore):
        store = store.folder
    if isinstance(store, FolderBlobStore):
        (store.root / "tmp" / name).write_bytes(b"half a PDF")
        return
    from invoicesync.state._blobs_s3 import S3BlobStore

    assert isinstance(store, S3BlobStore)
    store.client.create_multipart_upload(Bucket=store.bucket, Key=store.tmp_prefix + name)


def inline(store: HomeBlobStore) -> list[str]:
    """The sha256 of the blobs committed to the home store's inline file, through a connection of
    its own (what another process would see)."""
    if not os.path.exists(store.db_path):
        return []
    db = sqlite3.connect(store.db_path)
    try:
        return sorted(bytes(row[0]).hex() for row in db.execute("SELECT sha256 FROM blobs"))
    finally:
        db.close()


def blob_bytes(store: BlobStore, sha256: str) -> bytes:
    """A blob's whole content (small test blobs only)."""
    return b"".join(store.iter_chunks(sha256))


def forget(store: BlobStore, sha256: str) -> None:
    """Remove a blob behind the store's back (to test what happens when content is missing)."""
    if isinstance(store, HomeBlobStore):
        db = sqlite3.connect(store.db_path)
        try:
            with db:
                db.execute("DELETE FROM blobs WHERE sha256 = ?", (bytes.fromhex(sha256),))
        finally:
            db.close()
        store = store.folder
    assert isinstance(store, FolderBlobStore)
    store.path(sha256).unlink(missing_ok=True)
