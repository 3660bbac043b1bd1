"""Each target folder's files, listed once per run instead of asked about file by file.

Placing a new file used to cost two ``files.list`` calls: one for our own copy (by
``appProperties``) and one for a free name. A folder's files are now listed once per run (paged
with ``pageToken``, ``fields`` named), shared by the run's batches, and kept current with every
file this process writes, moves or deletes, so two batches still never pick one name.

Where the listing cannot answer, Drive is asked directly as before: after a write whose answer
was lost (``Uploader._create``), and for a file the ledger knows by id. A file another process
creates in a listed folder during the run is not seen until the next run; that writer is outside
the runner lock either way, and at worst two files share a name, as Drive allows (``names.py``).
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from invoicesync import Context

from .client import FILE_FIELDS, DriveClient, quote

#: Every live run's listings, per account: a write noted in one is noted in all, so runs of one
#: account side by side in this process (the name lock is per process too) see each other's names.
_live: dict[str, weakref.WeakSet[FolderListings]] = {}
_live_guard = threading.Lock()


class FolderListings:
    def __init__(self, account: str) -> None:
        self.account = account
        self._folders: dict[str, dict[str, dict[str, Any]]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        with _live_guard:
            _live.setdefault(account, weakref.WeakSet()).add(self)

    def files(self, client: DriveClient, folder_id: str) -> list[dict[str, Any]]:
        """The files (and folders) in ``folder_id``, not trashed: listed on first use."""
        with self._guard:
            lock = self._locks.setdefault(folder_id, threading.Lock())
        with lock:
            if folder_id not in self._folders:
                q = f"{quote(folder_id)} in parents and trashed = false"
                listed = {str(f["id"]): f for f in client.list_files(q, FILE_FIELDS) if f.get("id")}
                with self._guard:
                    self._folders[folder_id] = listed
        with self._guard:
            return [dict(f) for f in self._folders[folder_id].values()]

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
        parents = set(file.get("parents") or [])
        with self._guard:
            if "parents" not in file:  # an answer without its place: update where it is known
                for listed in self._folders.values():
                    if str(file_id) in listed:
                        listed[str(file_id)] = {**listed[str(file_id)], **file}
                return
            for folder_id, listed in self._folders.items():
                if folder_id in parents and not file.get("trashed"):
                    listed[str(file_id)] = {**listed.get(str(file_id), {}), **file}
                else:
                    listed.pop(str(file_id), None)

    def forget(self, folder_id: str | None) -> None:
        """The listing of ``folder_id`` may be out of date: list it again when next asked."""
        if not folder_id:
            return
        with _live_guard:
            peers = list(_live.get(self.account, ()))
        for listings in peers:
            with listings._guard:
                listings._folders.pop(folder_id, None)


def listings_for(ctx: Context) -> FolderListings:
    """The run's listings: one set per run, shared by its batches (they share its Context)."""
    return ctx.resource(("gdrive", "folder-listings"), lambda: FolderListings(ctx.account.name))
