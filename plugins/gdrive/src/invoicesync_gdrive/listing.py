"""Each target folder's files, listed once and then kept current by Drive's changes feed.

Placing a new file used to cost two ``files.list`` calls: one for our own copy (by
``appProperties``) and one for a free name. A folder's files are listed once (paged with
``pageToken``, ``fields`` named), shared by the run's batches, and kept current with every file
this process writes, moves or deletes, so two batches still never pick one name.

Between runs the listings are kept (``listing_store``: shards of the kv state, with the changes
token) and brought up to date with ``changes.list`` instead of listed again: the first time a run
has a file to place, it reads the saved listings and asks the changes feed what happened since
(usually one request, whatever the size of the folders), applying the changes to files in listed
folders (added, renamed, moved out, trashed, deleted) and ignoring the rest. The token is taken
(``changes.getStartPageToken``) before a fresh index's first listing, so nothing written during
or after a listing is missed; a token Drive refuses (or saved listings another save has retired)
means listing afresh. A run that places nothing asks Drive nothing (nothing is read or saved).

Memory does not grow with the files a run writes or a folder holds: the listings are rows of a
private SQLite file (on disk, gone when the run ends), a file kept as its name, owner marks and,
for files found by a listing or the changes feed, the md5, sha256 mark and creation time, never as
Drive's answer. A file this run wrote itself is kept as name and owner only: should the same
document come back in this run, its file is read again by id (``Uploader.find``); the next run's
changes feed reports it whole.

Where the listing cannot answer, Drive is asked directly as before: after a write whose answer
was lost (``Uploader._create``), and for a file the ledger knows by id. A file another process
creates in a listed folder during the run is not seen until the next run (its changes feed reports
it); that writer is outside the runner lock either way, and at worst two files share a name, as
Drive allows (``names.py``).
"""

from __future__ import annotations

import logging
import sqlite3
import sys
import threading
import weakref
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from invoicesync import AuthError, Context, RemoteError
from invoicesync.state import KeyValue

from . import listing_store
from .client import APP_DOCUMENT, APP_ROLE, APP_SHA256, DriveClient, quote
from .errors import DriveError

#: Every live run's listings, per account: a write noted in one is noted in all, so runs of one
#: account side by side in this process (the name lock is per process too) see each other's names.
_live: dict[str, weakref.WeakSet[FolderListings]] = {}
_live_guard = threading.Lock()
#: What the listing asks Drive for: enough to place and to recognise a file, nothing more.
LISTED_FIELDS = "id,name,appProperties,md5Checksum,createdTime"
#: What a change is read with: the file's place, whether it is gone, and what the listing keeps.
CHANGE_FIELDS = f"fileId,removed,file({LISTED_FIELDS},parents,trashed)"


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

    def __init__(self, account: str, kv: KeyValue | None = None, log: logging.Logger | None = None) -> None:
        """``kv``: where the listings are kept between runs (``None``: this run only, no feed)."""
        self.account = account
        self._kv = kv
        self._log = log or logging.getLogger(__name__)
        self._db = sqlite3.connect("", check_same_thread=False, isolation_level=None)
        self._db.executescript(_SCHEMA)
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._closed = False
        #: Reading the saved listings and the changes feed happens once a run, under this lock.
        self._feed_lock = threading.Lock()
        self._caught_up = False
        #: The changes feed's corpus (the shared drive id, "" for the user's) and the token the
        #: listings are current as of; ``None``: not known, the listings are not saved.
        self._corpus = ""
        self._token: str | None = None
        self._saved_token: str | None = None
        self._dirty = False
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
                if self._listed(folder_id):
                    return
            self._catch_up(client)
            with self._guard:
                if self._listed(folder_id):  # the saved listings, brought up to date, have it
                    return
            with self._guard:  # what an unfinished listing left is not trusted: it starts over
                self._db.execute("DELETE FROM entries WHERE folder = ?", (folder_id,))
            q = f"{quote(folder_id)} in parents and trashed = false"
            rows = ((folder_id, str(f["id"]), *_entry(f, complete=True)) for f in client.list_files(q, LISTED_FIELDS)
                    if f.get("id"))
            for page in _chunks(rows, 500):  # the listing is written as it comes, never held whole
                with self._guard:
                    self._db.executemany(f"INSERT OR REPLACE INTO entries (folder, id, {_COLUMNS}) "
                                         f"VALUES (?, ?, {_PLACES})", page)
            with self._guard:
                self._db.execute("INSERT OR IGNORE INTO listed (folder) VALUES (?)", (folder_id,))
                self._dirty = True

    def _listed(self, folder_id: str) -> bool:
        return self._db.execute("SELECT 1 FROM listed WHERE folder = ?", (folder_id,)).fetchone() is not None

    # -- between runs: the saved listings and the changes feed ----------------------------------

    def _catch_up(self, client: DriveClient) -> None:
        """Once a run, before its first listing: read the saved listings and apply the changes
        since their token; or, with none to read (or a token Drive refuses), take a token so the
        listings made from now on can be kept."""
        if self._kv is None:
            return
        with self._feed_lock:
            if self._caught_up:
                return
            self._caught_up = True
            self._corpus = client.drive_id or ""
            try:
                if not self._resume(client):
                    self._token = client.start_page_token()
            except AuthError:
                raise
            except RemoteError as exc:
                self._log.info("gdrive: the changes feed failed (%s); listing folders afresh this run", exc)
                self._token = None  # nothing is saved this run: the next one reads the old token again
                self._reset()

    def _resume(self, client: DriveClient) -> bool:
        assert self._kv is not None
        head = listing_store.stored_head(self._kv, self._corpus)
        if head is None:
            return False
        try:
            for page in listing_store.stored_rows(self._kv, head):
                with self._guard:
                    self._db.executemany(f"INSERT OR REPLACE INTO entries (folder, id, {_COLUMNS}) "
                                         f"VALUES (?, ?, {_PLACES})", page)
        except listing_store.ShardMissing:  # a newer save retired them: list afresh, never half an index
            self._reset()
            return False
        with self._guard:
            self._db.executemany("INSERT OR IGNORE INTO listed (folder) VALUES (?)",
                                 [(str(f),) for f in head["folders"]])
        try:
            for changes, token in client.changes(head["token"], CHANGE_FIELDS):
                with self._guard:
                    for change in changes:
                        self._apply(change)
                if token is not None:
                    self._token = token
        except DriveError as exc:
            if not _token_refused(exc):
                raise
            self._log.info("gdrive: Drive refused the saved changes token (%s); listing folders afresh", exc)
            self._reset()
            return False
        self._saved_token = head["token"]
        return True

    def _apply(self, change: dict[str, Any]) -> None:
        """One change from the feed (under ``_guard``): where the file is now, if in a listed folder."""
        file = change.get("file")
        file_id = change.get("fileId") or (file.get("id") if isinstance(file, dict) else None)
        if not file_id:
            return
        file_id = str(file_id)
        self._dirty = True
        self._db.execute("DELETE FROM entries WHERE id = ?", (file_id,))
        if change.get("removed") or not isinstance(file, dict) or file.get("trashed"):
            # Gone (deleted, trashed, out of reach). A listed folder that went is listed again if needed.
            self._db.execute("DELETE FROM listed WHERE folder = ?", (file_id,))
            self._db.execute("DELETE FROM entries WHERE folder = ?", (file_id,))
            return
        entry = _entry(file, complete=True)
        for folder_id in {str(p) for p in file.get("parents") or []}:
            if self._listed(folder_id):
                self._put(folder_id, file_id, entry)

    def _reset(self) -> None:
        """Forget everything read or listed: the next look-up lists its folder afresh."""
        with self._guard:
            self._db.execute("DELETE FROM listed")
            self._db.execute("DELETE FROM entries")

    def save(self) -> None:
        """Keep the listings and their token for the next run: only a token Drive gave us before
        anything in them was listed, and only when something changed."""
        with self._guard:
            if self._kv is None or self._closed or self._token is None:
                return
            if not self._dirty and self._token == self._saved_token:
                return
            folders = [row[0] for row in self._db.execute("SELECT folder FROM listed ORDER BY folder")]
        listing_store.save(self._kv, self._pages(listing_store.SHARD_ROWS), corpus=self._corpus,
                           token=self._token, folders=folders)
        with self._guard:
            self._saved_token, self._dirty = self._token, False

    def _pages(self, size: int) -> Iterator[list[list[Any]]]:
        """Every entry, ``size`` at a time, read by key range (no cursor held across a kv write)."""
        after: tuple[str, str] = ("", "")
        while True:
            with self._guard:
                rows = self._db.execute(
                    f"SELECT folder, id, {_COLUMNS} FROM entries WHERE (folder, id) > (?, ?) "
                    "AND folder IN (SELECT folder FROM listed) ORDER BY folder, id LIMIT ?", (*after, size)).fetchall()
            if not rows:
                return
            after = (rows[-1][0], rows[-1][1])
            yield [list(row) for row in rows]

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
        # A catch-up in progress ends first: a change it fetched before this write must not land
        # over it. (A write before the fetch is in the feed's answer already.)
        with self._feed_lock, self._guard:
            if self._closed:  # a run of this account that has ended: nothing of it is asked any more
                return
            self._dirty = True
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
                listings._dirty = True

    def close(self) -> None:
        """At the end of the run (``ctx.resource`` calls it): the listings are saved for the next
        run, and the file goes with the connection."""
        with _live_guard:
            _live.get(self.account, weakref.WeakSet()).discard(self)
        try:
            self.save()
        finally:
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
    return ctx.resource(("gdrive", "folder-listings"), lambda: FolderListings(ctx.account.name, ctx.kv, ctx.log))


def _token_refused(exc: DriveError) -> bool:
    """Drive does not take the token (unknown, expired, for another corpus): start over."""
    return exc.status == 410 or (exc.status == 400 and exc.location == "pageToken")
