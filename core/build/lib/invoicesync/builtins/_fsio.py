"""File I/O for ``localfs``: atomic, idempotent writes that honour the umask, moves aside, and the
cleanup of temp files a killed run left behind."""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable

from ..naming import numbered

PART_PREFIX, PART_SUFFIX = ".invoicesync-", ".part"
#: A temp file whose mtime is this old is no live write (a write touches it with every chunk):
#: a run was killed mid-write, and the file is removed the next time its folder is written.
STALE_PART_SECONDS = 600.0

_cleaned: set[str] = set()
_cleaned_lock = threading.Lock()
_umask_lock = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (other threads create files)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _umask_lock:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def sha_of(path: str) -> str | None:
    if not os.path.isfile(path):
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def free_path(root: str, path: str, sha: str, ours: Iterable[str]) -> str:
    """``path``, unless another file with other content sits there that is not ours: then the first
    `` (n)`` variant that is free or already holds this content. Someone else's file is never replaced."""
    owned = set(ours)
    candidate, n = path, 1
    while candidate not in owned and sha_of(os.path.join(root, candidate)) not in (None, sha):
        n += 1
        candidate = numbered(path, n)
    return candidate


def write_if_different(target: str, sha: str, chunks: Callable[[], Iterable[bytes]], *, umask: int) -> bool:
    """Write ``target`` atomically (temp file, fsync, rename) unless it already holds ``sha``."""
    if sha_of(target) == sha:
        return False
    folder = os.path.dirname(target)
    os.makedirs(folder, exist_ok=True)
    clean_stale_parts(folder)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=PART_PREFIX, suffix=PART_SUFFIX)
    try:
        # mkstemp makes 0600; the user's umask decides who else may read the archive.
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks():
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return True


def clean_stale_parts(folder: str, *, now: float | None = None) -> list[str]:
    """Remove temp files of killed runs from ``folder`` (once per folder per process)."""
    with _cleaned_lock:
        if folder in _cleaned:
            return []
        if len(_cleaned) > 10_000:  # bounded however many folders a long run touches
            _cleaned.clear()
        _cleaned.add(folder)
    removed = []
    cutoff = (now if now is not None else time.time()) - STALE_PART_SECONDS
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for entry in entries:
        if not (entry.name.startswith(PART_PREFIX) and entry.name.endswith(PART_SUFFIX)):
            continue
        try:
            if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < cutoff:
                os.unlink(entry.path)
                removed.append(entry.name)
        except OSError:
            continue  # gone already, or not ours to remove
    return removed


def move_aside(root: str, rel: str, folder: str) -> str | None:
    """Move ``root/rel`` to ``root/folder/rel`` (never over another file); ``None`` if it is gone."""
    source = os.path.join(root, rel)
    if not os.path.isfile(source):
        return None
    destination, n = f"{folder}/{rel}", 1
    while os.path.exists(os.path.join(root, destination)):
        n += 1
        destination = numbered(f"{folder}/{rel}", n)
    os.makedirs(os.path.dirname(os.path.join(root, destination)), exist_ok=True)
    os.replace(source, os.path.join(root, destination))
    return destination
