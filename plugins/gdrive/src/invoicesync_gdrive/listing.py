"""Each target folder's files, listed once per run instead of asked about file by file.

Placing a new file used to cost two ``files.list`` calls: one for our own copy (by
``appProperties``) and one for a free name. A folder's files are now listed once per run (paged
with ``pageToken``, ``fields`` named), shared by the run's batches, and kept current with every
file this process writes, moves or deletes, so two batches still never pick one name.

Memory does not grow with the files a run writes: the listings are rows of a private SQLite file
(on disk, gone when the run ends), a file kept as its name, owner marks and, for files found by
the listing, the md5, sha256 mark and creation time, never as Drive's answer. A file this run wrote
itself is kept as name and owner only: should the same document come back in this run, its file is
read again by id (``Uploader.find``).

Where the listing cannot answer, Drive is asked directly as before: after a write whose answer
was lost (``Uploader._create``), and for a file the ledger knows by id. A file another process
creates in a listed folder during the run is not seen until the next run; that writer is outside
the runner lock either way, and at worst two files share a name, as Drive allows (``names.py``).
"""

from __future__ import annotations

import sqlite3
import sys
import threading
import weakref
from collections.abc import Iterable, Iterator
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
    """The run's listings, kept in a private SQLite file (``sqlite3.connect("")``: on disk, deleted
    when closed) rather than in memory: a run that writes 10,000 files holds none of them in RAM,
    only SQLite's small page cache, and a look-up is one indexed query."""

    def __init__(self, account: str) -> None:
        self.account = account
        self._db = sqlite3.connect("", check_same_thread=False, isolation_level=None)
        self._db.executescript(_SCHEMA)
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._closed = False
        with _live_guard:
            _live.setdefault(account, weakref.WeakSet()).add(self)

    def owned(self, client: DriveClient, folder_id: str, owner: dict[str, str]) -> list[dict[str, Any]]:
        """The files in ``folder_id`` (not trashed) whose ``appProperties`` are ``owner``'s."""
        self._list(client, folder_id)
        with self._guard:
            rows = self._db.execute(f"SELECT id, {_COLUMNS} FROM entries WHERE folder = ? AND document IS ? "
                                    "AND role IS ?", (folder_id, owner.get(APP_DOCUMENT), owner.get(APP_ROLE)))
            return [Entry(*row[1:]).as_file(row[0], folder_id) for row in rows.fetchall()]

    def taken(self, client: DriveClient, folder_id: str, names: Iterable[str], owner: dict[str, str]) -> set[str]:
        """Which of ``names`` a file in ``folder_id`` holds that is not ``owner``'s."""
        wanted = list(set(names))
        self._list(client, folder_id)
        taken: set[str] = set()
        with self._guard:
            for start in range(0, len(wanted), 500):  # within SQLite's limit on parameters
                chunk = wanted[start:start + 500]
                rows = self._db.execute(
                    f"SELECT name, document, role FROM entries WHERE folder = ? "
                    f"AND name IN ({','.join('?' * len(chunk))})", (folder_id, *chunk))
                taken |= {name for name, document, role in rows.fetchall()
                          if not Entry(name, document, role).owned_by(owner)}
        return taken

    def _list(self, client: DriveClient, folder_id: str) -> None:
        """List the folder into the table on first use."""
        with self._guard:
            lock = self._locks.setdefault(folder_id, threading.Lock())
        with lock:
            with self._guard:
                if self._db.execute("SELECT 1 FROM listed WHERE folder = ?", (folder_id,)).fetchone():
                    return
            q = f"{quote(folder_id)} in parents and trashed = false"
            rows = ((folder_id, str(f["id"]), *_entry(f, complete=True)) for f in client.list_files(q, LISTED_FIELDS)
                    if f.get("id"))
            for page in _chunks(rows, 500):  # the listing is written as it comes, never held whole
                with self._guard:
                    self._db.executemany(f"INSERT OR REPLACE INTO entries (folder, id, {_COLUMNS}) "
                                         f"VALUES (?, ?, {_PLACES})", page)
            with self._guard:
                self._db.execute("INSERT OR IGNORE INTO listed (folder) VALUES (?)", (folder_id,))

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
            if self._closed:  # a run of this account that has ended: nothing of it is asked any more
                return
            known = self._db.execute(f"SELECT folder, {_COLUMNS} FROM entries WHERE id = ?", (file_id,)).fetchall()
            if "parents" not in file:  # an answer without its place: update where it is known
                for folder_id, *entry in known:
                    self._put(folder_id, file_id, _merged(Entry(*entry), file))
                return
            self._db.execute("DELETE FROM entries WHERE id = ?", (file_id,))
            if file.get("trashed"):
                return
            old = {folder_id: Entry(*entry) for folder_id, *entry in known}
            for folder_id in parents:
                if self._db.execute("SELECT 1 FROM listed WHERE folder = ?", (folder_id,)).fetchone():
                    self._put(folder_id, file_id, _merged(old.get(folder_id), file))

    def _put(self, folder_id: str, file_id: str, entry: Entry) -> None:
        self._db.execute(f"INSERT OR REPLACE INTO entries (folder, id, {_COLUMNS}) VALUES (?, ?, {_PLACES})",
                         (folder_id, file_id, *entry))

    def forget(self, folder_id: str | None) -> None:
        """The listing of ``folder_id`` may be out of date: list it again when next asked."""
        if not folder_id:
            return
        with _live_guard:
            peers = list(_live.get(self.account, ()))
        for listings in peers:
            with listings._guard:
                if listings._closed:
                    continue
                listings._db.execute("DELETE FROM listed WHERE folder = ?", (folder_id,))
                listings._db.execute("DELETE FROM entries WHERE folder = ?", (folder_id,))

    def close(self) -> None:
        """At the end of the run (``ctx.resource`` calls it): the file goes with the connection."""
        with _live_guard:
            _live.get(self.account, weakref.WeakSet()).discard(self)
        with self._guard:
            self._closed = True
            self._db.close()


_COLUMNS = "name, document, role, md5, sha256, created"
_PLACES = ", ".join("?" * len(Entry._fields))
_SCHEMA = f"""
    PRAGMA journal_mode = OFF;
    PRAGMA synchronous = OFF;
    PRAGMA cache_size = -1024;
    CREATE TABLE listed (folder TEXT PRIMARY KEY);
    CREATE TABLE entries (folder TEXT NOT NULL, id TEXT NOT NULL, {_COLUMNS}, PRIMARY KEY (folder, id));
    CREATE INDEX entries_owner ON entries (folder, document, role);
    CREATE INDEX entries_name ON entries (folder, name);
    CREATE INDEX entries_id ON entries (id);
"""


def _chunks(rows: Iterable[tuple[Any, ...]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    page: list[tuple[Any, ...]] = []
    for row in rows:
        page.append(row)
        if len(page) >= size:
            yield page
            page = []
    if page:
        yield page


def _merged(old: Entry | None, file: dict[str, Any]) -> Entry:
    """What a write's answer says of a file: its new name and marks; content checks are read again."""
    new = _entry({**({"name": old.name} if old else {}), **file}, complete=False)
    if "appProperties" not in file and old is not None:
        new = new._replace(document=old.document, role=old.role)
    return new


def listings_for(ctx: Context) -> FolderListings:
    """The run's listings: one set per run, shared by its batches (they share its Context)."""
    return ctx.resource(("gdrive", "folder-listings"), lambda: FolderListings(ctx.account.name))
