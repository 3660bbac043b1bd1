"""A content-addressed blob store on disk: a file's name is its sha256."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from ..models import FileRef, FileRole

CHUNK = 1024 * 1024


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._root = str(root)
        (root / "tmp").mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        return Path(self._file(sha256))

    def _file(self, sha256: str) -> str:
        # A plain string: pathlib interns every part it parses, and every blob name is unique, so
        # Path objects here would make memory grow with the number of documents.
        return os.path.join(self._root, sha256[:2], sha256[2:])

    def exists(self, sha256: str) -> bool:
        return os.path.isfile(self._file(sha256))

    def write(self, chunks: Iterable[bytes]) -> tuple[str, int]:
        """Stream ``chunks`` into the store; return ``(sha256, size)``. Memory stays one chunk."""
        digest = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(dir=os.path.join(self._root, "tmp"))
        try:
            with os.fdopen(fd, "wb") as handle:
                for chunk in chunks:
                    digest.update(chunk)
                    size += len(chunk)
                    handle.write(chunk)
                handle.flush()
                os.fsync(handle.fileno())
            sha = digest.hexdigest()
            final = self._file(sha)
            os.makedirs(os.path.dirname(final), exist_ok=True)
            os.replace(tmp_name, final)  # same content, same name: a second write is harmless
            return sha, size
        except BaseException:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
            raise

    def clean_tmp(self) -> int:
        """Remove half-written blobs a killed writer left in ``tmp/``; return how many.

        Only safe when no writer is live: the runner calls it at start-up, under the runner lock.
        """
        removed = 0
        os.makedirs(os.path.join(self._root, "tmp"), exist_ok=True)
        with os.scandir(os.path.join(self._root, "tmp")) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False):
                    try:
                        os.unlink(entry.path)
                        removed += 1
                    except FileNotFoundError:
                        pass
        return removed

    def put(
        self,
        chunks: Iterable[bytes],
        *,
        name: str,
        media_type: str,
        role: FileRole = FileRole.ATTACHMENT,
        source_id: str | None = None,
    ) -> FileRef:
        sha, size = self.write(chunks)
        return FileRef(name=name, media_type=media_type, size=size, sha256=sha, role=role, source_id=source_id)

    def open(self, sha256: str) -> BinaryIO:
        try:
            return open(self._file(sha256), "rb")
        except FileNotFoundError:
            raise FileNotFoundError(f"blob {sha256} is missing from the store at {self.root}") from None

    def iter_chunks(self, sha256: str, size: int = CHUNK) -> Iterator[bytes]:
        with self.open(sha256) as handle:
            while chunk := handle.read(size):
                yield chunk
