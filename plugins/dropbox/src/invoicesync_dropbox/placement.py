"""Deciding where a file goes, by looking first: the heart of "never twice".

Before any write the path is looked up with ``get_metadata``. The same ``content_hash`` there
means the file is already delivered (a re-run, a crash after the upload but before the ledger
write, a timeout whose outcome was unknown): nothing is written. Different content follows the
account's ``on_change`` policy. Nothing relies on Dropbox's autorename, so the path we record is
always the path we chose.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from invoicesync.naming import with_suffix_number

from .client import DropboxClient, Metadata, write_mode

#: How many " (n)" names to try before giving up on keeping both.
MAX_SUFFIX = 50

Policy = Literal["keep_both", "overwrite", "skip"]


@dataclass
class Placement:
    path: str
    #: ``None``: the identical file is already there (``existing`` is its metadata).
    mode: dict[str, str] | None
    existing: Metadata | None = None
    #: Set when the policy says to leave the different content alone.
    skipped: str | None = None


def _is_same(meta: Metadata | None, content_hash: str) -> bool:
    return meta is not None and meta.get(".tag", "file") == "file" and meta.get("content_hash") == content_hash


def place(client: DropboxClient, planned: str, previous: str | None, content_hash: str, policy: Policy) -> Placement:
    """Choose the path and write mode for one file whose content hashes to ``content_hash``.

    ``previous`` is where the ledger says an earlier version went; it is checked first so a
    document whose name inputs changed (a renamed counterparty) updates its own file.
    """
    first = previous or planned
    meta = client.get_metadata(first)
    if meta is None:
        return Placement(first, write_mode())
    if _is_same(meta, content_hash):
        return Placement(first, None, meta)
    if meta.get(".tag") == "file":
        if policy == "overwrite":
            # Only the revision we just saw: a concurrent change becomes a conflict, not a loss.
            return Placement(first, write_mode(str(meta["rev"])), meta)
        if policy == "skip":
            return Placement(first, None, meta, skipped=f"{first} holds different content; on_change=skip keeps it")
    # keep_both (or a folder in the way): the planned name, then "name (2)", "name (3)", ...
    for n in range(1, MAX_SUFFIX + 1):
        candidate = planned if n == 1 else with_suffix_number(planned, n)
        if candidate == first:
            continue
        meta = client.get_metadata(candidate)
        if meta is None:
            return Placement(candidate, write_mode())
        if _is_same(meta, content_hash):
            return Placement(candidate, None, meta)
    raise FileExistsError(f"{planned} and {MAX_SUFFIX - 1} numbered variants all hold other content")
