"""Each target folder's files, listed once per run instead of asked about file by file.

Placing a new file used to cost two ``files.list`` calls: one for our own copy (by
``appProperties``) and one for a free name. A folder's files are now listed once per run (paged
with ``pageToken``, ``fields`` named), shared by the run's batches, and kept current with every
file this process writes, moves or deletes, so two batches still never pick one name.

Memory stays small however many files a run writes: a file is kept as a short tuple (its name,
owner marks and, for files found by the listing, the md5, sha256 mark and creation time), not as
Drive's answer. A file this run wrote itself is kept as name and owner only: should the same
document come back in this run, its file is read again by id (``Uploader.find``).

Where the listing cannot answer, Drive is asked directly as before: after a write whose answer
was lost (``Uploader._create``), and for a file the ledger knows by id. A file another process
creates in a listed folder during the run is not seen until the next run; that writer is outside
the runner lock either way, and at worst two files share a name, as Drive allows (``names.py``).
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections.abc import Iterable
from typing import Any, NamedTuple

from invoicesync import Context

from .client import APP_DOCUMENT, APP_ROLE, APP_SHA256, DriveClient, quote

#: Every live run's listings, per account: a write noted in one is noted in all, so runs of one
#: account side by side in this process (the name lock is per process too) see each other's names.
_live: dict[str, weakref.WeakSet[FolderListings]] = {}
_live_guard = threading.Lock()
#: What the listing asks Drive for: enough to place and to recognise a file, nothing more.
LISTED_FIELDS = "id,name,appProperties,md5Checksum,createdTime"


class Entry(NamedTuple):
    """One file of a listed folder. ``md5`` is ``None`` for a file this run wrote (read it by id)."""

    name: str
    document: str | None
    role: str | None
    md5: str | None = None
    sha256: str | None = None
    created: str | None = None

    def owned_by(self, owner: dict[str, str]) -> bool:
        return self.document == owner.get(APP_DOCUMENT) and self.role == owner.get(APP_ROLE)

    def as_file(self, file_id: str, folder_id: str) -> dict[str, Any]:
        """The entry in the shape of a Drive answer (the fields it has)."""
        props = {k: v for k, v in ((APP_DOCUMENT, self.document), (APP_ROLE, self.role), (APP_SHA256, self.sha256))
                 if v is not None}
        file: dict[str, Any] = {"id": file_id, "name": self.name, "parents": [folder_id], "appProperties": props}
        if self.md5 is not None:
            file["md5Checksum"] = self.md5
        if self.created is not None:
            file["createdTime"] = self.created
        return file


def _entry(file: dict[str, Any], *, complete: bool) -> Entry:
    props = file.get("appProperties") or {}
    role = props.get(APP_ROLE)
    return Entry(str(file.get("name") or ""), props.get(APP_DOCUMENT), sys.intern(role) if role else None,
                 *((file.get("md5Checksum"), props.get(APP_SHA256), file.get("createdTime")) if complete else ()))


class FolderListings:
    def __init__(self, account: str) -> None:
        self.account = account
        self._folders: dict[str, dict[str, Entry]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        with _live_guard:
            _live.setdefault(account, weakref.WeakSet()).add(self)

    def owned(self, client: DriveClient, folder_id: str, owner: dict[str, str]) -> list[dict[str, Any]]:
        """The files in ``folder_id`` (not trashed) whose ``appProperties`` are ``owner``'s."""
        listed = self._listed(client, folder_id)
        with self._guard:
            return [e.as_file(i, folder_id) for i, e in listed.items() if e.owned_by(owner)]

    def taken(self, client: DriveClient, folder_id: str, names: Iterable[str], owner: dict[str, str]) -> set[str]:
        """Which of ``names`` a file in ``folder_id`` holds that is not ``owner``'s."""
        wanted = set(names)
        listed = self._listed(client, folder_id)
        with self._guard:
            return {e.name for e in listed.values() if e.name in wanted and not e.owned_by(owner)}

    def _listed(self, client: DriveClient, folder_id: str) -> dict[str, Entry]:
        """The folder's entries, listed on first use."""
        with self._guard:
            lock = self._locks.setdefault(folder_id, threading.Lock())
        with lock:
            if folder_id not in self._folders:
                q = f"{quote(folder_id)} in parents and trashed = false"
                listed = {str(f["id"]): _entry(f, complete=True) for f in client.list_files(q, LISTED_FIELDS)
                          if f.get("id")}
                with self._guard:
                    self._folders[folder_id] = listed
        with self._guard:
            return self._folders[folder_id]

    def note(self, file: dict[str, Any]) -> None:
        """A file as Drive just answered for it (created, updated, moved or trashed)."""
        with _live_guard:
            peers = list(_live.get(self.account, ()))
        for listings in peers:
            listings._note_here(file)

    def _note_here(self, file: dict[str, Any]) -> None:
        file_id = file.get("id")
        if not file_id:
            return
        file_id = str(file_id)
        parents = set(file.get("parents") or [])
        with self._guard:
            if "parents" not in file:  # an answer without its place: update where it is known
                for listed in self._folders.values():
                    if file_id in listed:
                        listed[file_id] = _merged(listed[file_id], file)
                return
            for folder_id, listed in self._folders.items():
                if folder_id in parents and not file.get("trashed"):
                    listed[file_id] = _merged(listed.get(file_id), file)
                else:
                    listed.pop(file_id, None)

    def forget(self, folder_id: str | None) -> None:
        """The listing of ``folder_id`` may be out of date: list it again when next asked."""
        if not folder_id:
            return
        with _live_guard:
            peers = list(_live.get(self.account, ()))
        for listings in peers:
            with listings._guard:
                listings._folders.pop(folder_id, None)


def _merged(old: Entry | None, file: dict[str, Any]) -> Entry:
    """What a write's answer says of a file: its new name and marks; content checks are read again."""
    new = _entry({**({"name": old.name} if old else {}), **file}, complete=False)
    if "appProperties" not in file and old is not None:
        new = new._replace(document=old.document, role=old.role)
    return new


def listings_for(ctx: Context) -> FolderListings:
    """The run's listings: one set per run, shared by its batches (they share its Context)."""
    return ctx.resource(("gdrive", "folder-listings"), lambda: FolderListings(ctx.account.name))
