"""The sandbox's Dropbox namespace: a case-insensitive, case-preserving tree whose file contents
live on disk (never in RAM), with Dropbox's write-mode rules and a namespace write lock.

Errors are raised as ``RouteError`` carrying the Stone union the real API would send.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
import time
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from invoicesync.naming import with_suffix_number

from ..content_hash import content_hash_of_chunks, read_range


class RouteError(Exception):
    """A 409 route error: ``error`` is the route's error union."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(str(error))
        self.error = error


class BadInputError(Exception):
    """A 400: bad input, answered in plain text."""


class TooManyWritesError(Exception):
    """Namespace lock contention: answered 429 ``too_many_write_operations``."""


class PathContendedError(TooManyWritesError):
    """Another writer holds the lock where this file would go (a busy shared folder, say). A lone
    write gets the 429; in a batch commit only this entry fails, with ``too_many_write_operations``
    as the entry's own tag, or inside its WriteError when ``nested``."""

    def __init__(self, nested: bool) -> None:
        super().__init__("too_many_write_operations")
        self.nested = nested


@dataclass
class Contention:
    """Commits to paths matching ``pattern`` are refused ``times`` more times (``None``: always)."""

    pattern: re.Pattern[str]
    times: int | None
    nested: bool = False


def write_error(tag: str, **value: Any) -> dict[str, Any]:
    return {".tag": tag, **value}


def conflict(kind: str) -> dict[str, Any]:
    return {".tag": "conflict", "conflict": {".tag": kind}}


def normalize_key(path: str) -> str:
    """Dropbox compares paths NFC-normalised and case-insensitively."""
    return unicodedata.normalize("NFC", path).lower()


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_path(path: Any, route: str, *, field: str = "path") -> str:
    """Validate a path argument against the API's pattern (a 400 when it does not match)."""
    if not isinstance(path, str):
        raise BadInputError(f'Error in call to API function "{route}": {field}: '
                            f"expected string, got {type(path).__name__}")
    if not path.startswith("/") and not path.startswith(("id:", "ns:")):
        raise BadInputError(f"Error in call to API function \"{route}\": {field}: '{path}' did not match pattern "
                       "'(/(.|[\\r\\n])*)|(ns:[0-9]+(/.*)?)|(id:.*)'")
    return unicodedata.normalize("NFC", path)


#: Characters Dropbox calls "not recommended" (they break the Windows desktop app).
DISCOURAGED = set('<>:"|?*')
#: Dropbox's guidance for a whole path, in UTF-16 code units (an emoji counts 2).
MAX_PATH_UNITS = 260


def check_names(path: str, *, strict: bool = True) -> None:
    """The names in a write path (a WriteError, which each route wraps in its own union).

    Always refused: ``\\``, control characters, names over 255 bytes, empty, ``.`` and ``..``.
    ``strict`` (the sandbox default) also refuses what Dropbox only advises against — the
    characters ``< > : " | ? *``, a trailing dot or space, a path over 260 UTF-16 units — as
    ``disallowed_name``: the API notes do not say how the service reacts, and a client that
    avoids them is safe whichever way it does. ``DropboxSandbox(lenient_names=True)`` accepts them."""
    if not path.startswith("/"):
        raise RouteError(write_error("malformed_path"))  # ids and namespaces are not emulated
    names = path[1:].split("/")
    if path == "/" or any(name in ("", ".", "..") for name in names):
        raise RouteError(write_error("malformed_path"))
    for name in names:
        if "\\" in name or _CONTROL.search(name) or len(name.encode()) > 255:
            raise RouteError(write_error("disallowed_name"))
        if strict and (DISCOURAGED & set(name) or name.endswith((".", " "))):
            raise RouteError(write_error("disallowed_name"))
    if strict and len(path.encode("utf-16-le")) // 2 > MAX_PATH_UNITS:
        raise RouteError(write_error("disallowed_name"))


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Entry:
    kind: str  # "file" | "folder"
    display: str
    id: str
    rev: str = ""
    size: int = 0
    content_hash: str = ""
    blob: Path | None = None
    client_modified: str = ""
    server_modified: str = ""

    def metadata(self, *, tagged: bool) -> dict[str, Any]:
        name = self.display.rsplit("/", 1)[-1]
        base: dict[str, Any] = {"name": name, "id": self.id, "path_lower": normalize_key(self.display),
                                "path_display": self.display}
        if self.kind == "folder":
            return {".tag": "folder", **base} if tagged else base
        meta = {**base, "client_modified": self.client_modified, "server_modified": self.server_modified,
                "rev": self.rev, "size": self.size, "is_downloadable": True, "content_hash": self.content_hash}
        return {".tag": "file", **meta} if tagged else meta


class Namespace:
    """One user's Dropbox. ``write_limit`` concurrent writes are allowed; one more is contention."""

    def __init__(self, root: Path, *, quota_bytes: int | None = None, write_limit: int = 4,
                 write_hold: float = 0.0, lenient_names: bool = False) -> None:
        self.root = root
        self.strict_names = not lenient_names
        (root / "blobs").mkdir(parents=True, exist_ok=True)
        self.quota_bytes = quota_bytes
        self.write_limit = write_limit
        self.write_hold = write_hold
        self.entries: dict[str, Entry] = {}
        #: What ``files/delete_v2`` removed, by key: Dropbox keeps deleted files restorable.
        self.deleted: dict[str, Entry] = {}
        self.lock = threading.RLock()
        self._writers = 0
        self._rev = 0
        self.contended = 0
        self._contentions: list[Contention] = []
        #: Commits refused by ``contend``, per path (lower-cased): what a test asserts on.
        self.refused: dict[str, int] = {}
        #: The change journal behind ``list_folder/continue``: per path key, the sequence number of
        #: its last change and its display path then. ``epoch`` invalidates every cursor (``reset``).
        self.seq = 0
        self.journal: dict[str, tuple[int, str]] = {}
        self.epoch = 0

    # -- the write lock ------------------------------------------------------------------------

    @contextmanager
    def write_slot(self) -> Iterator[None]:
        with self.lock:
            if self._writers >= self.write_limit:
                self.contended += 1
                raise TooManyWritesError
            self._writers += 1
        try:
            if self.write_hold:
                time.sleep(self.write_hold)  # keeps the slot busy, so tests can provoke contention
            yield
        finally:
            with self.lock:
                self._writers -= 1

    def contend(self, pattern: str, *, times: int | None = None, nested: bool = False) -> None:
        """Hold the write lock on paths matching ``pattern`` (a regex searched in the lower-cased
        path) for the next ``times`` commits to them, or for good."""
        with self.lock:
            self._contentions.append(Contention(re.compile(pattern), times, nested))

    def uncontend(self) -> None:
        with self.lock:
            self._contentions.clear()

    def _check_contention(self, path: str) -> None:
        key = normalize_key(path)
        for rule in self._contentions:
            if rule.pattern.search(key) and (rule.times is None or rule.times > 0):
                if rule.times is not None:
                    rule.times -= 1
                self.refused[key] = self.refused.get(key, 0) + 1
                raise PathContendedError(rule.nested)

    # -- reads ---------------------------------------------------------------------------------

    def get(self, path: str) -> Entry | None:
        with self.lock:
            return self.entries.get(normalize_key(path))

    def children(self, path: str, recursive: bool) -> list[Entry]:
        prefix = normalize_key(path).rstrip("/") + "/"
        with self.lock:
            found = [e for key, e in self.entries.items() if key.startswith(prefix)
                     and (recursive or "/" not in key[len(prefix):])]
        return sorted(found, key=lambda e: normalize_key(e.display))

    def changes(self, path: str, recursive: bool, since: int) -> list[tuple[int, str, Entry | None]]:
        """What changed under ``path`` after change ``since``, oldest first: ``(seq, display, entry)``,
        with ``entry`` ``None`` for a path that holds nothing now (deleted or moved away)."""
        prefix = normalize_key(path).rstrip("/") + "/"
        with self.lock:
            found = [(seq, display, self.entries.get(key)) for key, (seq, display) in self.journal.items()
                     if seq > since and key.startswith(prefix) and (recursive or "/" not in key[len(prefix):])]
        return sorted(found, key=lambda change: change[0])

    def reset_cursors(self) -> None:
        """Invalidate every cursor handed out, as Dropbox may: the client must list again."""
        with self.lock:
            self.epoch += 1

    def _touched(self, display: str) -> None:
        self.seq += 1
        self.journal[normalize_key(display)] = (self.seq, display)

    def used(self) -> int:
        with self.lock:
            return sum(e.size for e in self.entries.values() if e.kind == "file")

    # -- writes --------------------------------------------------------------------------------

    def _new_id(self) -> str:
        return "id:" + secrets.token_urlsafe(16)

    def _next_rev(self) -> str:
        self._rev += 1
        return f"{secrets.randbits(20):05x}{self._rev:07x}"

    def _ensure_parents(self, path: str) -> str:
        """Create missing parent folders (uploads do) and return the path in display case."""
        names = path[1:].split("/")
        display = ""
        for name in names[:-1]:
            candidate = f"{display}/{name}"
            existing = self.entries.get(normalize_key(candidate))
            if existing is None:
                self.entries[normalize_key(candidate)] = Entry("folder", candidate, self._new_id())
                self._touched(candidate)
                display = candidate
            elif existing.kind == "file":
                raise RouteError(conflict("file_ancestor"))
            else:
                display = existing.display  # the existing folder's casing wins
        return f"{display}/{names[-1]}"

    def _ancestors_ok(self, path: str) -> None:
        names = path[1:].split("/")
        for i in range(1, len(names)):
            existing = self.entries.get(normalize_key("/" + "/".join(names[:i])))
            if existing is not None and existing.kind == "file":
                raise RouteError(conflict("file_ancestor"))

    def commit(self, path: str, mode: dict[str, Any], data: Path, size: int, *, autorename: bool = False,
               strict_conflict: bool = False, client_modified: str | None = None) -> Entry:
        """Store ``data`` (a file on disk, moved in) at ``path`` under ``mode``'s rules."""
        check_names(path, strict=self.strict_names)
        digest = _hash_file(data, size)
        with self.lock:
            self._check_contention(path)
            self._ancestors_ok(path)
            target = path
            existing = self.entries.get(normalize_key(target))
            tag = mode[".tag"]
            if existing is not None and existing.kind == "folder":
                if not autorename:
                    raise RouteError(conflict("folder"))
                target, existing = self._free_name(path, digest)
            if existing is not None and existing.content_hash == digest and not strict_conflict:
                data.unlink(missing_ok=True)
                return existing  # identical content is not a conflict, and nothing is written
            if existing is not None:
                if tag == "add" or (tag == "update" and existing.rev != mode.get("update")):
                    if not autorename:
                        raise RouteError(conflict("file"))
                    if tag == "update":
                        target = with_suffix_number(path, 2).replace(" (2)", " (conflicted copy)")
                        existing = self.entries.get(normalize_key(target))
                    else:
                        target, existing = self._free_name(path, digest)
                    if existing is not None and existing.content_hash == digest:
                        data.unlink(missing_ok=True)
                        return existing
            elif tag == "update" and strict_conflict:
                raise RouteError(conflict("file"))
            grow = size - (existing.size if existing else 0)
            if self.quota_bytes is not None and self.used() + grow > self.quota_bytes:
                raise RouteError(write_error("insufficient_space"))
            display = self._ensure_parents(target)
            blob = self.root / "blobs" / secrets.token_hex(12)
            os.replace(data, blob)
            now = _now()
            entry = Entry("file", existing.display if existing else display,
                          existing.id if existing else self._new_id(), self._next_rev(), size, digest, blob,
                          client_modified or now, now)
            if existing is not None and existing.blob is not None:
                existing.blob.unlink(missing_ok=True)
            self.entries[normalize_key(target)] = entry
            self._touched(entry.display)
            return entry

    def _free_name(self, path: str, digest: str) -> tuple[str, Entry | None]:
        for n in range(2, 1000):
            candidate = with_suffix_number(path, n)
            existing = self.entries.get(normalize_key(candidate))
            if existing is None or (existing.kind == "file" and existing.content_hash == digest):
                return candidate, existing
        raise RouteError(conflict("file"))

    def move(self, from_path: str, to_path: str, autorename: bool) -> Entry:
        """``files/move_v2`` of a file (folders are not emulated). Errors are RelocationError unions."""
        try:
            check_names(to_path, strict=self.strict_names)
        except RouteError as exc:
            raise RouteError({".tag": "to", "to": exc.error}) from None
        with self.lock:
            self._check_contention(to_path)
            source = self.entries.get(normalize_key(from_path))
            if source is None:
                raise RouteError({".tag": "from_lookup", "from_lookup": {".tag": "not_found"}})
            if source.kind != "file":
                raise RouteError({".tag": "other"})
            try:
                self._ancestors_ok(to_path)
                target = to_path
                existing = self.entries.get(normalize_key(target))
                if existing is not None:
                    if not autorename:
                        raise RouteError(conflict("folder" if existing.kind == "folder" else "file"))
                    target, _ = self._free_name(to_path, "")
                display = self._ensure_parents(target)
            except RouteError as exc:
                raise RouteError({".tag": "to", "to": exc.error}) from None
            del self.entries[normalize_key(source.display)]
            moved = Entry("file", display, source.id, source.rev, source.size, source.content_hash, source.blob,
                          source.client_modified, _now())
            self.entries[normalize_key(display)] = moved
            self._touched(source.display)
            self._touched(display)
            return moved

    def delete(self, path: str, parent_rev: str | None) -> Entry:
        """``files/delete_v2``: the entry (a folder with everything in it) goes to ``self.deleted``,
        restorable as Dropbox keeps it. With ``parent_rev``, only that revision of a file."""
        with self.lock:
            self._check_contention(path)
            entry = self.entries.get(normalize_key(path))
            if entry is None:
                raise RouteError({".tag": "path_lookup", "path_lookup": {".tag": "not_found"}})
            if parent_rev is not None and (entry.kind != "file" or entry.rev != parent_rev):
                raise RouteError({".tag": "path_write", "path_write": conflict("file")})
            prefix = normalize_key(entry.display) + "/"
            for key in [k for k in self.entries if k == normalize_key(entry.display) or k.startswith(prefix)]:
                self.deleted[key] = self.entries.pop(key)
                self._touched(self.deleted[key].display)
            return entry

    def create_folder(self, path: str, autorename: bool) -> Entry:
        check_names(path, strict=self.strict_names)
        with self.lock:
            self._ancestors_ok(path)
            existing = self.entries.get(normalize_key(path))
            if existing is not None:
                if not autorename:
                    raise RouteError(conflict("folder" if existing.kind == "folder" else "file"))
                path, _ = self._free_name(path, "")
            display = self._ensure_parents(path)
            entry = Entry("folder", display, self._new_id())
            self.entries[normalize_key(display)] = entry
            self._touched(display)
            return entry


def _hash_file(path: Path, size: int) -> str:
    with open(path, "rb") as handle:
        return content_hash_of_chunks(read_range(handle, 0, size))
