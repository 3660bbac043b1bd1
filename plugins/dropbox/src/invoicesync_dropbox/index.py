"""What the target folder holds, listed once per run instead of looked up file by file.

A first sync of N new documents used to cost N ``get_metadata`` calls, each answering "not
found". The index lists the template's fixed root folder (``/Invoices`` of
``/Invoices/{company}/...``) with ``list_folder`` (recursive, up to 2,000 entries a page) and
keeps the entries and the cursor in the plugin's kv state; a later run sends that cursor to
``list_folder/continue`` and gets only what changed since (files we wrote, files people added or
removed), usually in one request. The entries live on disk, never in memory (``index_table``): in
a private SQLite file during the run, in shards of the kv state between runs.

It stays safe to trust because every write still says what it expects: ``add`` never replaces,
``update`` only the revision we saw. A file that appears after the listing turns our write into a
conflict answer, and the paths involved are then looked up directly (``unsure``), as is a path
after an unknown outcome. The disk copy never runs ahead of what Dropbox reported: its cursor is
one Dropbox handed us, so anything written after it (by a run that crashed before it could record
anything) comes back through ``list_folder/continue``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from invoicesync import AuthError, Context, RemoteError

from .client import DropboxClient, Metadata
from .errors import DropboxApiError
from .index_table import KV_KEY, EntryTable, ShardMissing, meta_of, row_of, save_shards, stored_rows
from .paths import path_key

__all__ = ["KV_KEY", "FolderIndex", "index_for", "index_root"]

#: Entries per ``list_folder`` page: the most Dropbox takes.
LIST_LIMIT = 2000


def index_root(template: str) -> str | None:
    """The fixed folder every rendered path lies in, or ``None`` when the template starts with a
    placeholder (listing a whole Dropbox would cost more than it saves)."""
    parts = template.strip("/").split("/")[:-1]
    fixed: list[str] = []
    for part in parts:
        if "{" in part:
            break
        fixed.append(part)
    return "/" + "/".join(fixed) if fixed else None


class FolderIndex:
    """Path key → metadata of every file and folder under ``root``; shared by a run's pushes."""

    def __init__(self, root: str, ctx: Context) -> None:
        self.root = root
        self._prefix = path_key(root).rstrip("/") + "/"
        self._ctx = ctx
        self._lock = threading.RLock()
        self._entries = EntryTable()
        self._closed = False
        self._cursor: str | None = None
        self._ready = False
        #: Listing failed this run: every look-up goes to ``get_metadata``, as before the index.
        self._broken = False
        #: Paths the index may be wrong about (a conflict, a deletion in this run): looked up directly.
        self._unsure: set[str] = set()

    def covers(self, path: str) -> bool:
        return path_key(path).startswith(self._prefix)

    def lookup(self, client: DropboxClient, path: str) -> Metadata | None:
        """The entry at ``path``: from the index where it can answer, else from ``get_metadata``."""
        key = path_key(path)
        if self.covers(path) and key not in self._unsure and self._load(client):
            with self._lock:
                found = self._entries.get(key)
                return meta_of(found) if found is not None else None
        meta = client.get_metadata(path)
        if self.covers(path):
            with self._lock:
                self._put(key, meta)
                self._unsure.discard(key)
        return meta

    def record(self, meta: Metadata | None) -> None:
        """A write Dropbox confirmed (FileMetadata, which carries no ``.tag``)."""
        path = (meta or {}).get("path_display") or (meta or {}).get("path_lower")
        if isinstance(path, str) and self.covers(path):
            with self._lock:
                self._put(path_key(path), {".tag": "file", **(meta or {})})
                self._unsure.discard(path_key(path))

    def unsure(self, path: str) -> None:
        with self._lock:
            self._unsure.add(path_key(path))

    def close(self) -> None:
        """The run is over (``ctx.resource`` calls this): keep what it learnt for the next one."""
        try:
            self.save()
        finally:
            with self._lock:
                self._broken = self._closed = True  # a late look-up asks Dropbox: the table is gone
                self._entries.close()

    def save(self) -> None:
        """Keep the entries and the cursor for the next run (only a cursor Dropbox gave us). Saved
        after the listing and at the end of the run, not per push: a run that dies in between
        loses nothing the next run's ``list_folder/continue`` does not report again."""
        with self._lock:
            if not self._ready or self._broken or self._cursor is None:
                return
            save_shards(self._ctx.kv, self._entries, self.root, self._cursor)

    # -- building --------------------------------------------------------------------------------

    def _load(self, client: DropboxClient) -> bool:
        """List (or catch up) once; ``False`` when the index cannot be used this run."""
        with self._lock:
            if self._ready or self._broken:
                return not self._broken
            try:
                if not self._catch_up(client):
                    self._list(client)
            except AuthError:
                raise
            except RemoteError as exc:
                self._ctx.log.info("dropbox: listing %s failed (%s); looking files up one by one", self.root, exc)
                self._entries.clear()
                self._broken = True
                return False
            self._ready = True
        self.save()
        return True

    def _catch_up(self, client: DropboxClient) -> bool:
        stored = self._ctx.kv.get(KV_KEY)
        if not isinstance(stored, dict) or stored.get("root") != self.root or not stored.get("cursor"):
            return False
        try:
            for meta in stored_rows(self._ctx.kv, stored):
                self._apply(meta)
        except ShardMissing:  # a newer save retired what we read: list afresh, never half an index
            self._entries.clear()
            return False
        try:
            self._follow(client, lambda: client.call("files/list_folder/continue",
                                                     {"cursor": stored["cursor"]}, idempotent=True))
        except DropboxApiError as exc:
            if exc.status == 409 and exc.tags[:1] == ["reset"]:
                self._entries.clear()  # Dropbox asks for a fresh listing
                return False
            raise
        return True

    def _list(self, client: DropboxClient) -> None:
        arg = {"path": self.root, "recursive": True, "include_deleted": False, "limit": LIST_LIMIT}
        try:
            self._follow(client, lambda: client.call("files/list_folder", arg, idempotent=True))
        except DropboxApiError as exc:
            if exc.status == 409 and exc.tags[:2] == ["path", "not_found"]:
                self._cursor = None  # nothing there yet: complete and empty, listed again next run
                return
            raise

    def _follow(self, client: DropboxClient, first: Callable[[], Any]) -> None:
        page = first()
        while True:
            if not isinstance(page, dict) or not isinstance(page.get("cursor"), str):
                raise DropboxApiError("list_folder answered without a cursor", status=200)
            for meta in page.get("entries") or []:
                self._apply(meta)
            self._cursor = page["cursor"]
            if not page.get("has_more"):
                return
            cursor = page["cursor"]
            page = client.call("files/list_folder/continue", {"cursor": cursor}, idempotent=True)

    def _apply(self, meta: Any) -> None:
        if not isinstance(meta, dict):
            return
        path = meta.get("path_lower") or meta.get("path_display")
        if not isinstance(path, str) or not path:
            return
        key = path_key(path)
        if meta.get(".tag") == "deleted":
            self._entries.delete_tree(key)  # a deleted folder takes everything in it along
            return
        self._put(key, meta)

    def _put(self, key: str, meta: Metadata | None) -> None:
        if self._closed:
            return
        if meta is None:
            self._entries.delete(key)
        else:
            self._entries.put(key, row_of(meta))


def index_for(ctx: Context, template: str) -> FolderIndex | None:
    """The run's index (one per run: the pushes of a run share its Context), or ``None``."""
    root = index_root(template)
    if root is None:
        return None
    return ctx.resource(("dropbox", "folder-index", root), lambda: FolderIndex(root, ctx))
