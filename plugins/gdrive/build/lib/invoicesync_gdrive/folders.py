"""The folder tree under the root: found before created, one folder per name, ids cached.

Drive happily keeps two folders called "2024" side by side, so uniqueness is ours to keep:
each (parent, name) is resolved under a lock shared by every thread of this process, and we
always list before creating. Should another process have raced us anyway, everyone settles on
the oldest folder of that name (then the smallest id), so all writers still meet in one place.
"""

from __future__ import annotations

import threading
from typing import Any

from invoicesync import ConfigError, OutcomeUnknown
from invoicesync.state import KeyValue

from .client import FOLDER_MIME, DriveClient, quote

_registry_lock = threading.Lock()
_locks: dict[tuple[str, str, str], threading.Lock] = {}


def _lock_for(account: str, parent: str, name: str) -> threading.Lock:
    with _registry_lock:
        return _locks.setdefault((account, parent, name), threading.Lock())


class FolderTree:
    def __init__(self, client: DriveClient, kv: KeyValue, account: str) -> None:
        self.client = client
        self.kv = kv
        self.account = account

    # -- the root ----------------------------------------------------------------------------

    def root(self, *, refresh: bool = False) -> str:
        """The root folder id: the configured id (checked once), or the configured path, made."""
        settings = self.client.settings
        if not refresh and (cached := self.kv.get("root_id")):
            self.client.drive_id = self.client.drive_id or self.kv.get("root_drive_id")
            return str(cached)
        if settings.root_folder_id:
            folder = self.client.get_file(settings.root_folder_id, "id,mimeType,trashed,driveId")
            if folder is None or folder.get("trashed"):
                raise ConfigError(f"root_folder_id {settings.root_folder_id} is gone, trashed, or not visible "
                                  "to this login (with the drive.file scope, create it through invoicesync)")
            if folder.get("mimeType") != FOLDER_MIME:
                raise ConfigError(f"root_folder_id {settings.root_folder_id} is not a folder")
            root_id = str(folder["id"])
            self._note_drive(folder.get("driveId"))
        else:
            segments = [s for s in settings.root_folder_path.split("/") if s.strip()]
            root_id = self.ensure(segments, start=settings.root_parent)
        self.kv.set("root_id", root_id)
        return root_id

    def _note_drive(self, drive_id: str | None) -> None:
        """A root folder inside a shared drive, with no ``shared_drive_id`` set: search that drive
        (``corpora=drive``). The default ``user`` corpus is not documented to reach into it."""
        if self.client.settings.shared_drive_id:
            return
        if drive_id:
            self.kv.set("root_drive_id", drive_id)
        else:
            self.kv.delete("root_drive_id")
        self.client.drive_id = drive_id or None

    # -- paths -------------------------------------------------------------------------------

    def ensure(self, segments: list[str], *, start: str | None = None) -> str:
        """The id of the folder ``segments`` under ``start`` (default: the root), made if missing."""
        parent = start if start is not None else self.root()
        for name in segments:
            parent = self._child(parent, name)
        return parent

    def forget(self, segments: list[str]) -> None:
        """Drop cached ids along a path (one of them turned out gone); the next ensure re-resolves."""
        settings = self.client.settings
        self.kv.delete("root_id")
        if settings.root_folder_id:
            parent: str | None = settings.root_folder_id
            names = segments
        else:
            parent = settings.root_parent
            names = [s for s in settings.root_folder_path.split("/") if s.strip()] + segments
        for name in names:
            if parent is None:
                break
            key = _key(parent, name)
            parent = self.kv.get(key)
            self.kv.delete(key)

    def _child(self, parent: str, name: str) -> str:
        key = _key(parent, name)
        if cached := self.kv.get(key):
            return str(cached)
        with _lock_for(self.account, parent, name):
            if cached := self.kv.get(key):  # another thread made it while we waited
                return str(cached)
            folder = self._find(parent, name)
            if folder is None:
                try:
                    self.client.create_folder(name, parent)
                except OutcomeUnknown:
                    pass  # it may exist now: the lookup below decides
                # Look again rather than trust our own answer: a concurrent writer elsewhere
                # may have made one too, and the oldest one wins for everybody.
                folder = self._find(parent, name)
                if folder is None:
                    raise ConfigError(f"could not create the Drive folder {name!r}")
            self.kv.set(key, folder["id"])
            return str(folder["id"])

    def _find(self, parent: str, name: str) -> dict[str, Any] | None:
        q = (f"name = {quote(name)} and {quote(parent)} in parents and mimeType = {quote(FOLDER_MIME)} "
             "and trashed = false")
        found = list(self.client.list_files(q, "id,name,createdTime"))
        if not found:
            return None
        return min(found, key=lambda f: (f.get("createdTime") or "", f["id"]))


def _key(parent: str, name: str) -> str:
    return f"folder:{parent}/{name}"
