"""File I/O for ``localfs``: atomic, idempotent writes that honour the umask, moves aside, and the
cleanup of temp files a killed run left behind.

A temp file is named after its writer (``.invoicesync-MACHINE-PID-START-xxxxxxxx.part``), so a
run can tell a killed writer's file (its process is gone) from a live one's and remove it at once.
A temp file from another machine, or from before this naming, is removed once it is old enough."""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable

from ..naming import numbered
from ..processes import ProcessIdentity

PART_PREFIX, PART_SUFFIX = ".invoicesync-", ".part"
#: A temp file whose writer cannot be judged (another machine, an older invoicesync) and whose mtime
#: is this old is no live write (a write touches it with every chunk): a run was killed mid-write.
STALE_PART_SECONDS = 600.0

_cleaned: set[str] = set()
_cleaned_lock = threading.Lock()
_umask_lock = threading.Lock()


@functools.cache
def _writer_tag(pid: int) -> str:
    """``MACHINE-PID-START-``: who writes this process's temp files (``pid`` keys the cache: a fork is
    another writer)."""
    me = ProcessIdentity.current()
    return f"{_machine_hash(me.host)}-{me.pid}-{me.started or 'x'}-"


def _machine_hash(host: str) -> str:
    return hashlib.sha256(host.encode()).hexdigest()[:8]


def is_stale_part(name: str, mtime: float, now: float) -> bool:
    """Whether the temp file ``name`` is a leftover: its writer is gone, or (writer unknown) it is old."""
    tag = name[len(PART_PREFIX):-len(PART_SUFFIX)].split("-")
    me = ProcessIdentity.current()
    if len(tag) == 4 and tag[0] == _machine_hash(me.host) and tag[1].isdigit():
        return ProcessIdentity(me.host, int(tag[1]), None if tag[2] == "x" else tag[2]).is_gone()
    return mtime < now - STALE_PART_SECONDS


def is_part(name: str) -> bool:
    return name.startswith(PART_PREFIX) and name.endswith(PART_SUFFIX)


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
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=PART_PREFIX + _writer_tag(os.getpid()),
                                suffix=PART_SUFFIX)
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
    return _remove_stale(folder, time.time() if now is None else now)


def sweep_stale_parts(root: str) -> int:
    """Remove the temp files of killed writers anywhere under ``root``: once at the start of a run,
    for folders the run may never write to again. One walk, and a stat only of temp files."""
    removed, now = 0, time.time()
    for folder, _, names in os.walk(root):
        if any(is_part(name) for name in names):
            removed += len(_remove_stale(folder, now))
    return removed


def _remove_stale(folder: str, now: float) -> list[str]:
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for entry in entries:
        if not is_part(entry.name):
            continue
        try:
            if entry.is_file(follow_symlinks=False) and is_stale_part(
                    entry.name, entry.stat(follow_symlinks=False).st_mtime, now):
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
