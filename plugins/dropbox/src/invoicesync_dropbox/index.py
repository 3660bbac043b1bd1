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

A first sync need not list at all when ``connect`` already looked (``check_folder``): a folder that
was absent or held no files then is recorded as such (``EMPTY_KEY``, with the cursor of that listing,
if any), and the first run of that root with no saved index takes that record, once, and starts from
it instead of listing. An empty listing can only be wrong one way, a file that appeared since, and
that is the case every write already covers: ``add`` never replaces, a conflict answer has the paths
looked up directly, and a commit of content identical to what is there writes nothing. A folder
that held files at connect gets no record, so a sync whose ledger was lost lists it and finds its
files, as before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, NamedTuple

from invoicesync import AuthError, Context, RemoteError

from .client import DropboxClient, Metadata
from .errors import DropboxApiError
from .index_table import KEPT, KV_KEY, EntryTable, ShardMissing, meta_of, row_of, save_shards, stored_rows
from .paths import path_key

__all__ = ["EMPTY_KEY", "KV_KEY", "FolderCheck", "FolderIndex", "check_folder", "index_for", "index_root"]

#: Entries per ``list_folder`` page: the most Dropbox takes.
LIST_LIMIT = 2000
#: ``connect`` found the index root absent or without files: ``{"root", "cursor", "fields", "rows"}``
#: (the rows are the folders it held). Taken, once, by the first run of that root with no saved index.
EMPTY_KEY = "folder-index-empty"


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
        #: A saved index of this root was found (even one that then had to be listed afresh).
        self._saved = False

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
                if not self._catch_up(client) and not self._start_empty():
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
        self._saved = True
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

    def _start_empty(self) -> bool:
        """Start from what ``connect`` saw (``EMPTY_KEY``) when no index of this root was saved:
        taken atomically, so of runs starting at once (Celery workers) one uses it and the others
        list; a record of another root is taken away unused. ``False``: list."""
        if self._saved:
            return False  # a saved index had to be listed afresh (reset, retired shards): it held files
        kv = self._ctx.kv
        if kv.get(EMPTY_KEY) is None:
            return False
        taken: list[Any] = [None]

        def take(old: Any) -> None:
            taken[0] = old
            return None

        kv.update(EMPTY_KEY, take)
        record = taken[0]
        if not isinstance(record, dict) or record.get("root") != self.root:
            return False
        for meta in stored_rows(kv, {"fields": record.get("fields"), "rows": record.get("rows") or []}):
            self._apply(meta)
        cursor = record.get("cursor")
        self._cursor = cursor if isinstance(cursor, str) and cursor else None
        self._ctx.log.info("dropbox: %s held no files at connect; not listed", self.root)
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


class FolderCheck(NamedTuple):
    """What ``connect`` saw at the index root: ``absent``, ``empty`` (no files), ``files`` (holds
    files, or more entries than one page), ``unknown`` (Dropbox refused the listing: ``detail``)."""

    root: str
    state: str
    detail: str = ""

    def message(self) -> str:
        if self.state == "absent":
            return f"Dropbox folder {self.root} does not exist yet: the first sync creates it, without listing it."
        if self.state == "empty":
            return f"Dropbox folder {self.root} holds no files yet: the first sync will not list it."
        if self.state == "files":
            return (f"Dropbox folder {self.root} already holds files: the first sync lists it, recognises "
                    "the files invoicesync put there before (by their content) and leaves the others alone.")
        return f"Dropbox folder {self.root} could not be listed ({self.detail}): syncs look each file up."


def check_folder(ctx: Context, client: DropboxClient, root: str) -> FolderCheck:
    """``connect``'s look at the index root: one ``list_folder`` page (recursive, ``LIST_LIMIT``).
    Records ``EMPTY_KEY`` when the folder is absent or holds no files and no index of it is saved;
    removes any earlier record otherwise. Raises what the listing raises, but a route error (409)."""
    arg = {"path": root, "recursive": True, "include_deleted": False, "limit": LIST_LIMIT}
    try:
        page = client.call("files/list_folder", arg, idempotent=True)
    except DropboxApiError as exc:
        if exc.status != 409:
            raise
        if exc.tags[:2] == ["path", "not_found"]:
            return _empty_at_connect(ctx, FolderCheck(root, "absent"), None, [])
        ctx.kv.delete(EMPTY_KEY)
        return FolderCheck(root, "unknown", "/".join(exc.tags) or str(exc))
    page = page if isinstance(page, dict) else {}
    entries = [meta for meta in page.get("entries") or [] if isinstance(meta, dict)]
    cursor = page.get("cursor")
    if page.get("has_more") or not isinstance(cursor, str) or any(meta.get(".tag") != "folder" for meta in entries):
        ctx.kv.delete(EMPTY_KEY)
        return FolderCheck(root, "files")
    return _empty_at_connect(ctx, FolderCheck(root, "empty"), cursor, entries)


def _empty_at_connect(ctx: Context, check: FolderCheck, cursor: str | None, folders: list[Any]) -> FolderCheck:
    saved = ctx.kv.get(KV_KEY)
    if isinstance(saved, dict) and saved.get("root") == check.root and saved.get("cursor"):
        ctx.kv.delete(EMPTY_KEY)  # a saved index of this root takes over, and catches up from its cursor
    else:
        ctx.kv.set(EMPTY_KEY, {"root": check.root, "cursor": cursor, "fields": list(KEPT),
                               "rows": [list(row_of(meta)) for meta in folders]})
    return check


def index_for(ctx: Context, template: str) -> FolderIndex | None:
    """The run's index (one per run: the pushes of a run share its Context), or ``None``."""
    root = index_root(template)
    if root is None:
        return None
    return ctx.resource(("dropbox", "folder-index", root), lambda: FolderIndex(root, ctx))
