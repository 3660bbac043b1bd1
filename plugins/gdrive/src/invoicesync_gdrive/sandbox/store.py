"""The sandbox's drive: file metadata in memory, file content on disk (never in RAM)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import os
import secrets
import shutil
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

FOLDER_MIME = "application/vnd.google-apps.folder"
MY_DRIVE_ROOT = "0AMyDriveRootFolder"


@dataclass(frozen=True)
class Change:
    """One entry of the change log: a file was created, changed, trashed or deleted at ``time``.

    ``drive_id`` is the shared drive the file was in (``None``: My Drive), ``removed`` that it is
    gone for good. Changes are listed in log order; a file's earlier entries are superseded by its
    latest one, as Drive reports each changed file once, in its current state."""

    file_id: str
    time: str
    drive_id: str | None
    removed: bool = False


class ApiError(Exception):
    """An error the HTTP layer answers in Drive's shape."""

    def __init__(self, status: int, reason: str, message: str, *, domain: str = "global",
                 location: str | None = None, location_type: str | None = None) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message
        self.domain, self.location, self.location_type = domain, location, location_type


def not_found(file_id: str) -> ApiError:
    return ApiError(404, "notFound", f"File not found: {file_id}.", location="fileId", location_type="parameter")


@dataclass
class DriveFile:
    id: str
    name: str
    mime_type: str
    parents: list[str]
    created: str
    modified: str
    app_properties: dict[str, str] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    trashed: bool = False
    drive_id: str | None = None
    md5: str | None = None
    sha256: str | None = None
    size: int | None = None
    version: int = 1
    #: Made by the user (the Drive web UI), not by this app: a ``drive.file`` token cannot see it.
    by_user: bool = False

    def resource(self) -> dict[str, Any]:
        """The full File resource; ``fields`` then trims it. Sizes and versions are strings."""
        body: dict[str, Any] = {
            "kind": "drive#file", "id": self.id, "name": self.name, "mimeType": self.mime_type,
            "parents": list(self.parents), "trashed": self.trashed, "createdTime": self.created,
            "modifiedTime": self.modified, "version": str(self.version),
            "appProperties": dict(self.app_properties), "properties": dict(self.properties),
        }
        if self.size is not None and self.mime_type != FOLDER_MIME:
            body.update(size=str(self.size), md5Checksum=self.md5, sha256Checksum=self.sha256)
        if self.drive_id:
            body["driveId"] = self.drive_id
        return body

    def searchable(self) -> dict[str, Any]:
        """What the ``q`` parser sees: ``'root' in parents`` matches My Drive's top level too."""
        parents = list(self.parents) + (["root"] if MY_DRIVE_ROOT in self.parents else [])
        return {"name": self.name, "mimeType": self.mime_type, "parents": parents, "trashed": self.trashed,
                "starred": False, "createdTime": self.created, "modifiedTime": self.modified,
                "appProperties": self.app_properties, "properties": self.properties}


@dataclass
class Content:
    """An uploaded body, spooled to a file while its md5/sha256 and size are counted."""

    path: Path
    size: int = 0
    md5: Any = field(default_factory=lambda: hashlib.md5(usedforsecurity=False))
    sha256: Any = field(default_factory=hashlib.sha256)

    def write(self, data: bytes) -> None:
        if not data:
            return
        with open(self.path, "ab") as handle:
            handle.write(data)
        self.size += len(data)
        self.md5.update(data)
        self.sha256.update(data)


class DriveStore:
    def __init__(self, root: Path | None = None, shared_drives: dict[str, str] | None = None) -> None:
        self.dir = Path(root or tempfile.mkdtemp(prefix="invoicesync-gdrive-sandbox-"))
        if root is None:  # a folder made here goes when the store does (or at exit), closed or not
            weakref.finalize(self, shutil.rmtree, self.dir, True)
        (self.dir / "content").mkdir(parents=True, exist_ok=True)
        (self.dir / "spool").mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.files: dict[str, DriveFile] = {}
        self.shared_drives = dict(shared_drives or {})
        self._clock = datetime(2026, 1, 1, tzinfo=UTC)
        self._ids = itertools.count(1)
        #: The change log (``changes.list``): one list for every corpus, filtered when listed.
        self.changes: list[Change] = []
        #: Where each file's latest change sits in the log (earlier ones are superseded).
        self._latest: dict[str, int] = {}
        #: Tokens handed out before the last ``expire_changes`` carry an older epoch: refused.
        self._changes_epoch = 0
        self._token_key = secrets.token_bytes(16)

    # -- ids, time, content ------------------------------------------------------------------

    def _now(self) -> str:
        # A strictly increasing clock, so "oldest" is always well defined.
        with self.lock:
            self._clock = max(self._clock + timedelta(milliseconds=1), datetime.now(UTC))
            return self._clock.strftime("%Y-%m-%dT%H:%M:%S.") + f"{self._clock.microsecond // 1000:03d}Z"

    def new_id(self) -> str:
        return f"1{next(self._ids):05d}{secrets.token_hex(8)}"

    def spool(self) -> Content:
        fd, name = tempfile.mkstemp(dir=self.dir / "spool")
        os.close(fd)
        return Content(Path(name))

    def content_path(self, file_id: str) -> Path:
        return self.dir / "content" / file_id

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- the change log ------------------------------------------------------------------------

    def _changed(self, file: DriveFile, *, removed: bool = False) -> None:
        """Log a change of ``file`` (under ``self.lock``)."""
        self._latest[file.id] = len(self.changes)
        self.changes.append(Change(file.id, file.modified, file.drive_id, removed))

    def change_token(self, corpus: str, position: int) -> str:
        """An opaque page token: where to read the log from, for one corpus (``user`` or a shared
        drive id), signed so a made-up or altered token is refused."""
        data = json.dumps([corpus, position, self._changes_epoch]).encode()
        mac = hmac.new(self._token_key, data, hashlib.sha256).digest()[:12]
        return base64.urlsafe_b64encode(mac + data).decode().rstrip("=")

    def read_change_token(self, token: str, corpus: str) -> int | None:
        """The log position of ``token`` for ``corpus``; ``None`` when it is not one we handed out
        for that corpus, or it has expired."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            mac, data = raw[:12], raw[12:]
            if not hmac.compare_digest(mac, hmac.new(self._token_key, data, hashlib.sha256).digest()[:12]):
                return None
            token_corpus, position, epoch = json.loads(data)
        except (ValueError, TypeError):
            return None
        with self.lock:
            if token_corpus != corpus or epoch != self._changes_epoch or not isinstance(position, int) or \
                    not 0 <= position <= len(self.changes):
                return None
        return position

    def changes_from(self, position: int, wanted: Callable[[Change], bool],
                     limit: int) -> tuple[list[tuple[Change, DriveFile | None]], int]:
        """Up to ``limit`` latest changes from ``position`` that ``wanted`` keeps, each with the
        file as it is now (``None``: deleted); and the position after the last one read."""
        found: list[tuple[Change, DriveFile | None]] = []
        with self.lock:
            end = len(self.changes)
            while position < end and len(found) < limit:
                change = self.changes[position]
                if self._latest.get(change.file_id) == position and wanted(change):
                    found.append((change, self.files.get(change.file_id)))
                position += 1
        return found, position

    def expire_changes(self) -> None:
        """Every change token handed out so far is refused from now on (Drive may expire them)."""
        with self.lock:
            self._changes_epoch += 1

    # -- lookups -----------------------------------------------------------------------------

    def get(self, file_id: str, *, all_drives: bool) -> DriveFile:
        with self.lock:
            file = self.files.get(file_id)
        # Without supportsAllDrives a shared-drive item simply does not exist for the caller.
        if file is None or (file.drive_id and not all_drives):
            raise not_found(file_id)
        return file

    def container_drive(self, parent: str, *, all_drives: bool) -> str | None:
        """The shared drive a new child of ``parent`` lands in (``None``: My Drive)."""
        if parent in ("root", MY_DRIVE_ROOT):
            return None
        if parent in self.shared_drives:
            if not all_drives:
                raise not_found(parent)
            return parent
        folder = self.get(parent, all_drives=all_drives)
        if folder.mime_type != FOLDER_MIME:
            raise ApiError(400, "invalidParent", f"The parent {parent} is not a folder.", location="parents")
        return folder.drive_id

    def search(self, predicate: Callable[[dict[str, Any]], bool], *, include_shared: bool,
               drive_id: str | None) -> list[DriveFile]:
        with self.lock:
            candidates = list(self.files.values())
        return [f for f in candidates
                if (drive_id is None or f.drive_id == drive_id)
                and (include_shared or not f.drive_id)
                and predicate(f.searchable())]

    # -- writes ------------------------------------------------------------------------------

    def create(self, metadata: dict[str, Any], content: Content | None, media_type: str | None,
               *, all_drives: bool) -> DriveFile:
        parents = [("root" if p == "root" else p) for p in metadata.get("parents") or ["root"]]
        if len(parents) != 1:
            raise ApiError(403, "cannotAddParent", "A file must have exactly one parent.", location="parents")
        drive_id = self.container_drive(parents[0], all_drives=all_drives)
        now = self._now()
        file = DriveFile(
            id=self.new_id(), name=str(metadata.get("name") or "Untitled"),
            mime_type=str(metadata.get("mimeType") or media_type or "application/octet-stream"),
            parents=[MY_DRIVE_ROOT if parents[0] == "root" else parents[0]], created=now, modified=now,
            app_properties=_string_map(metadata.get("appProperties")),
            properties=_string_map(metadata.get("properties")),
            drive_id=drive_id,
        )
        with self.lock:
            if file.mime_type != FOLDER_MIME:
                self._attach(file, content)
            self.files[file.id] = file
            self._changed(file)
        return file

    def update(self, file: DriveFile, metadata: dict[str, Any], content: Content | None,
               add_parents: Iterable[str] = (), remove_parents: Iterable[str] = (), *, all_drives: bool) -> DriveFile:
        if "parents" in metadata:
            raise ApiError(403, "parentsNotWritable", "The parents field is not directly writable in update "
                               "requests. Use the addParents and removeParents parameters instead.")
        add, remove = [p for p in add_parents if p], [p for p in remove_parents if p]
        for parent in add:
            self.container_drive(parent, all_drives=all_drives)
        with self.lock:
            if "name" in metadata:
                file.name = str(metadata["name"])
            if "mimeType" in metadata and content is not None:
                file.mime_type = str(metadata["mimeType"])
            if "trashed" in metadata:
                file.trashed = bool(metadata["trashed"])
            for attr, key in (("app_properties", "appProperties"), ("properties", "properties")):
                if isinstance(metadata.get(key), dict):
                    _string_map({k: v for k, v in metadata[key].items() if v is not None})  # the 124-byte rule
                    merged = {**getattr(file, attr), **metadata[key]}
                    setattr(file, attr, {k: str(v) for k, v in merged.items() if v is not None})
            parents = [p for p in file.parents if p not in remove] + [p for p in add if p not in file.parents]
            if len(parents) != 1:
                raise ApiError(403, "cannotAddParent", "A file must have exactly one parent.", location="parents")
            file.parents = [MY_DRIVE_ROOT if p == "root" else p for p in parents]
            if content is not None:
                self._attach(file, content)
            file.version += 1
            file.modified = self._now()
            self._changed(file)
        return file

    def delete(self, file_id: str) -> None:
        """Delete a file for good, a folder with everything in it (someone else did: tests)."""
        with self.lock:
            file = self.files.pop(file_id, None)
            if file is None:
                raise not_found(file_id)
            file.modified = self._now()
            self._changed(file, removed=True)
            for child in [f.id for f in self.files.values() if file_id in f.parents]:
                self.delete(child)
        self.content_path(file_id).unlink(missing_ok=True)

    def _attach(self, file: DriveFile, content: Content | None) -> None:
        if content is None:
            content = self.spool()
        os.replace(content.path, self.content_path(file.id))
        file.size, file.md5, file.sha256 = content.size, content.md5.hexdigest(), content.sha256.hexdigest()


def _string_map(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ApiError(400, "invalid", "appProperties and properties must be objects of strings")
    for key, item in value.items():
        if len(key.encode()) + len(str(item).encode()) > 124:
            raise ApiError(400, "invalid", f"The property {key} is too large (key + value over 124 bytes).")
    return {k: str(v) for k, v in value.items() if v is not None}
