"""Dropbox's ``content_hash``: SHA-256 over the concatenated SHA-256 digests of 4 MiB blocks.

Streaming, so a file of any size is hashed in bounded memory. The sandbox uses the same code to
verify what clients send; the tests pin it to the published test vectors so both cannot drift
together.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import BinaryIO

BLOCK_SIZE = 4 * 1024 * 1024
_READ = 1024 * 1024


class ContentHasher:
    """Incremental ``content_hash``: ``update`` with any chunk sizes, then ``hexdigest``."""

    def __init__(self) -> None:
        self._overall = hashlib.sha256()
        self._block = hashlib.sha256()
        self._block_fill = 0

    def update(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            room = BLOCK_SIZE - self._block_fill
            piece = view[:room]
            self._block.update(piece)
            self._block_fill += len(piece)
            view = view[len(piece):]
            if self._block_fill == BLOCK_SIZE:
                self._overall.update(self._block.digest())
                self._block = hashlib.sha256()
                self._block_fill = 0

    def hexdigest(self) -> str:
        overall = self._overall.copy()
        if self._block_fill:
            overall.update(self._block.digest())
        return overall.hexdigest()


def content_hash(data: bytes) -> str:
    hasher = ContentHasher()
    hasher.update(data)
    return hasher.hexdigest()


def content_hash_of_blob(sha256: str, size: int) -> str | None:
    """The ``content_hash`` of a file known by its SHA-256 and size, without reading it: a file of
    one block (at most 4 MiB, nearly every invoice) hashes to SHA-256 of its own SHA-256 digest.
    ``None`` for a larger file, whose blocks must be read."""
    if size == 0:
        return hashlib.sha256().hexdigest()
    if size <= BLOCK_SIZE:
        return hashlib.sha256(bytes.fromhex(sha256)).hexdigest()
    return None


def content_hash_of_chunks(chunks: Iterable[bytes]) -> str:
    hasher = ContentHasher()
    for chunk in chunks:
        hasher.update(chunk)
    return hasher.hexdigest()


def read_range(handle: BinaryIO, offset: int, length: int, piece: int = _READ) -> Iterable[bytes]:
    """Yield ``length`` bytes of ``handle`` from ``offset`` in pieces (re-seeks, so re-callable)."""
    handle.seek(offset)
    remaining = length
    while remaining > 0:
        chunk = handle.read(min(piece, remaining))
        if not chunk:
            raise OSError(f"file ended {remaining} bytes early at offset {offset + length - remaining}")
        remaining -= len(chunk)
        yield chunk


def content_hash_of_range(handle: BinaryIO, offset: int, length: int) -> str:
    return content_hash_of_chunks(read_range(handle, offset, length))
