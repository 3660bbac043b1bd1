"""Blobs in a folder: the home's ``blobs/`` (the default) or a folder shared by several machines.

A blob is written to ``tmp/`` beside the blobs, fsynced, then published under its sha256 with
``link(2)``: atomic on one file system (NFS included), and it fails when the name exists, so the
first writer of some content wins and later ones, on any machine, only drop their temp file. A
published file is never replaced, so a reader on another NFS client never sees it swapped under it.
"""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from ._blobs import ABANDONED_AFTER, CHUNK, PutMixin, is_abandoned, writer_tag

#: link(2) refused by the file system itself (some SMB and FUSE mounts): publish by rename instead.
_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.ENOSYS, errno.EMLINK}


class FolderBlobStore(PutMixin):
    def __init__(self, root: Path, *, shared: bool = False) -> None:
        self.root = root
        self._root = str(root)
        #: Shared: also fsync the folder after publishing, so a name another machine may already
        #: have read survives this machine's crash.
        self.shared = shared
        self.url = root.as_uri() if shared else str(root)
        (root / "tmp").mkdir(parents=True, exist_ok=True)
        #: Shard folders known to exist: a mkdir per blob costs a path walk in the kernel (~2% of a
        #: sync's CPU) to learn what the first blob of each shard already made sure of.
        self._shards: set[str] = set()

    def path(self, sha256: str) -> Path:
        """Where the blob is on disk (folder backends only; plugins use :meth:`open`)."""
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
        fd, tmp_name = tempfile.mkstemp(dir=os.path.join(self._root, "tmp"), prefix=writer_tag())
        try:
            with os.fdopen(fd, "wb") as handle:
                for chunk in chunks:
                    digest.update(chunk)
                    size += len(chunk)
                    handle.write(chunk)
                handle.flush()
                os.fsync(handle.fileno())
            sha = digest.hexdigest()
            self._publish(tmp_name, self._file(sha))
            return sha, size
        finally:
            try:
                os.unlink(tmp_name)  # published by link: the temp name goes; by rename: already gone
            except FileNotFoundError:
                pass

    def _publish(self, tmp_name: str, final: str) -> None:
        folder = os.path.dirname(final)
        if folder not in self._shards:
            os.makedirs(folder, exist_ok=True)
            self._shards.add(folder)
        try:
            try:
                os.link(tmp_name, final)
            except FileNotFoundError:  # the shard was removed behind our back (a clean-up): make it again
                self._shards.discard(folder)
                os.makedirs(folder, exist_ok=True)
                os.link(tmp_name, final)
        except FileExistsError:
            return  # the same content, written before (maybe by another machine): keep that one
        except OSError as exc:
            if exc.errno not in _NO_LINKS:
                raise
            if os.path.exists(final):
                return
            os.replace(tmp_name, final)  # same content, same name: a racing second writer is harmless
        if self.shared:
            _fsync_folder(folder)

    def shas(self) -> Iterator[str]:
        with os.scandir(self._root) as shards:
            for shard in shards:
                if len(shard.name) == 2 and shard.is_dir(follow_symlinks=False):
                    with os.scandir(shard.path) as names:
                        yield from (shard.name + entry.name for entry in names if len(entry.name) == 62)

    def clean_tmp(self, older_than: float = ABANDONED_AFTER) -> int:
        """Remove half-written blobs killed writers left in ``tmp/``; return how many.

        A temp file of a dead process of this host goes at once; another host's after
        ``older_than`` seconds (its writer may be alive)."""
        removed = 0
        os.makedirs(os.path.join(self._root, "tmp"), exist_ok=True)
        with os.scandir(os.path.join(self._root, "tmp")) as entries:
            for entry in entries:
                try:
                    if entry.is_file(follow_symlinks=False) and is_abandoned(
                            entry.name, entry.stat(follow_symlinks=False).st_mtime, older_than):
                        os.unlink(entry.path)
                        removed += 1
                except FileNotFoundError:
                    pass
        return removed

    def open(self, sha256: str) -> BinaryIO:
        try:
            return open(self._file(sha256), "rb")
        except FileNotFoundError:
            raise FileNotFoundError(f"blob {sha256} is missing from the store at {self.url}") from None

    def iter_chunks(self, sha256: str, size: int = CHUNK) -> Iterator[bytes]:
        with self.open(sha256) as handle:
            while chunk := handle.read(size):
                yield chunk


def _fsync_folder(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:  # some network file systems refuse fsync on a folder: their link is synchronous
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF):
            raise
    finally:
        os.close(fd)
