"""Deciding where a file goes, by looking first: the heart of "never twice".

Before any write the candidate paths are looked up, in the run's ``FolderIndex`` where it can
answer (one listing instead of a ``get_metadata`` per file), else with ``get_metadata``:

1. where the ledger says this document's file went before. Our ``content_hash`` there means it is
   delivered already; an earlier version of ours there (the hash the ledger recorded) is a changed
   document, and the account's ``on_change`` policy decides;
2. then the planned path and its `` (2)``, `` (3)``... variants. Our ``content_hash`` on one of
   them is this document, found again (a re-run, a lost ledger, a crash after the upload, a
   timeout whose outcome was unknown): nothing is written. Any other content is someone else's —
   another document that renders to the same name, or a file a person put there — and is kept:
   the document takes the next free name, whatever ``on_change`` says.

Names chosen by documents still in flight (this push, or another push of the same account in
this process) are ``Claims``: not free, even though Dropbox does not show them yet. Nothing
relies on Dropbox's autorename, so the path we record is always the path we chose.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Literal

from invoicesync.naming import with_suffix_number

from .client import DropboxClient, Metadata, file_hash, is_file, write_mode
from .index import FolderIndex
from .paths import path_key

#: How many " (n)" names to try before giving up on keeping both.
MAX_SUFFIX = 50

Policy = Literal["keep_both", "overwrite", "skip"]


@dataclass(frozen=True)
class Earlier:
    """Where the ledger says this document's file went, and the content_hash it had then."""

    path: str
    content_hash: str | None = None


@dataclass
class Placement:
    path: str
    #: ``None``: the identical file is already there (``existing`` is its metadata).
    mode: dict[str, str] | None
    existing: Metadata | None = None
    #: Set when the policy says to leave the different content alone.
    skipped: str | None = None


@dataclass
class Claims:
    """Paths chosen for writes not yet committed, per account, shared by concurrent pushes."""

    _held: dict[str, set[str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def claim(self, account: str, path: str, mine: set[str]) -> bool:
        """Take ``path`` for a push that already holds ``mine``; ``False`` if another push holds it."""
        key = path_key(path)
        with self._lock:
            held = self._held.setdefault(account, set())
            if key in held and key not in mine:
                return False
            held.add(key)
            mine.add(key)
            return True

    def unclaim(self, account: str, path: str, mine: set[str]) -> None:
        key = path_key(path)
        with self._lock:
            if key in mine:
                mine.discard(key)
                self._held.get(account, set()).discard(key)

    def release(self, account: str, mine: set[str]) -> None:
        with self._lock:
            held = self._held.get(account, set())
            held -= mine
            if not held:
                self._held.pop(account, None)
        mine.clear()


#: One per process: the pushes of an account run in threads of one process.
CLAIMS = Claims()


class Placer:
    """Places the files of one push. ``mine`` holds the names its own documents chose, so no two
    of them pick one name, and no other push of the account picks them while they are in flight."""

    def __init__(self, client: DropboxClient, account: str, policy: Policy, index: FolderIndex | None = None) -> None:
        self.client = client
        self.account = account
        self.policy = policy
        self.mine: set[str] = set()
        #: ``None``: every path is looked up with ``get_metadata`` (no fixed root, or placing again
        #: after a conflict showed the listing is out of date).
        self.index = index

    def _look(self, path: str) -> Metadata | None:
        if self.index is None:
            return self.client.get_metadata(path)
        return self.index.lookup(self.client, path)

    def release(self) -> None:
        """After the commits: Dropbox itself now shows which names are taken."""
        CLAIMS.release(self.account, self.mine)

    def _take(self, path: str) -> bool:
        """Claim ``path`` before looking at it: once a push of this account holds the claim, the
        others skip the name, and after its commit they see the file, so no look-up goes stale."""
        return path_key(path) not in self.mine and CLAIMS.claim(self.account, path, self.mine)

    def _drop(self, path: str) -> None:
        CLAIMS.unclaim(self.account, path, self.mine)

    def place(self, planned: str, earlier: Earlier | None, content_hash: str) -> Placement:
        """Choose the path and write mode for one file whose content hashes to ``content_hash``."""
        if earlier is not None:
            found = self._at_earlier(earlier, content_hash)
            if found is not None:
                return found
        for n in range(1, MAX_SUFFIX + 1):
            candidate = planned if n == 1 else with_suffix_number(planned, n)
            if not self._take(candidate):
                continue  # chosen by another document in flight
            meta = self._look(candidate)
            if meta is None:
                return Placement(candidate, write_mode())
            if _holds(meta, content_hash):
                return Placement(candidate, None, meta)
            self._drop(candidate)  # someone else's content: keep it, try the next name
        raise FileExistsError(f"{planned} and {MAX_SUFFIX - 1} numbered variants all hold other content")

    def _at_earlier(self, earlier: Earlier, content_hash: str) -> Placement | None:
        """The document's own file from its last delivery, if it is still there and still ours."""
        path = earlier.path
        if not self._take(path):
            return None
        meta = self._look(path)
        if _holds(meta, content_hash):
            return Placement(path, None, meta)
        ours = is_file(meta) and (earlier.content_hash is None or file_hash(meta) == earlier.content_hash)
        if meta is not None and ours:
            # An earlier version of this very document: the policy decides.
            rev = meta.get("rev")
            if self.policy == "overwrite" and isinstance(rev, str) and rev:
                # Only the revision we just saw: a concurrent change becomes a conflict, not a loss.
                return Placement(path, write_mode(rev), meta)
            if self.policy == "skip":
                return Placement(path, None, meta, skipped=f"{path} holds an earlier version; "
                                 "on_change=skip keeps it")
        # Gone, replaced by a folder, changed by someone since, keep_both, or no rev to pin an
        # overwrite to (never a blind replace): the document goes
        # to the planned name, or the next free one beside it.
        self._drop(path)
        return None


def _holds(meta: Metadata | None, content_hash: str) -> bool:
    return is_file(meta) and file_hash(meta) == content_hash
