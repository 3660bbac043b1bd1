"""content_hash: the published test vectors, chunk-size independence, and the SDK's own hasher."""

from __future__ import annotations

import hashlib

import pytest
from invoicesync_dropbox.content_hash import BLOCK_SIZE, ContentHasher, content_hash, content_hash_of_blob


@pytest.mark.parametrize(("data", "expected"), [
    (b"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    (b"abc", "4f8b42c22dd3729b519ba6f68d2da7cc5b2d606d05daed5ad5128cc03e6c6358"),
    (bytes(BLOCK_SIZE + 1), "14a4d47f23a30177885d9820122f17d2d3a55fe63f7f5c27b95f689e0b2accd6"),
])
def test_published_vectors(data: bytes, expected: str) -> None:
    assert content_hash(data) == expected


@pytest.mark.parametrize("piece", [4093, 65536, BLOCK_SIZE - 1, BLOCK_SIZE, BLOCK_SIZE + 7])
def test_any_chunking_gives_the_same_hash(piece: int) -> None:
    data = bytes(range(256)) * (2 * BLOCK_SIZE // 256 + 3)
    hasher = ContentHasher()
    for start in range(0, len(data), piece):
        hasher.update(data[start:start + piece])
    assert hasher.hexdigest() == content_hash(data)


def test_matches_the_official_sdk() -> None:
    sdk = pytest.importorskip("dropbox.content_hash")
    data = b"x" * (BLOCK_SIZE * 2 + 12345)
    reference = sdk.DropboxContentHasher()
    reference.update(data)
    assert content_hash(data) == reference.hexdigest()


@pytest.mark.parametrize("size", [0, 1, 3, 4093, BLOCK_SIZE - 1, BLOCK_SIZE])
def test_a_one_block_files_hash_comes_from_its_sha256(size: int) -> None:
    data = bytes(range(256)) * (size // 256 + 1)
    data = data[:size]
    assert content_hash_of_blob(hashlib.sha256(data).hexdigest(), size) == content_hash(data)


def test_a_larger_file_must_be_read() -> None:
    assert content_hash_of_blob(hashlib.sha256(b"x").hexdigest(), BLOCK_SIZE + 1) is None
