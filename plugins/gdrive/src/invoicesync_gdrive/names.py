"""Keeping two documents that render to one name apart: ``X.pdf``, then ``X (2).pdf``, ``X (3).pdf``.

Drive would accept two files called ``X.pdf`` in one folder, and our own lookup (by
``appProperties``) would still tell them apart. People cannot: a folder listing, a download as
zip or Drive for desktop shows two identical names (or renames one behind our back). So, like
the other targets, a name taken by another file gets the first free `` (n)`` suffix; a file we
already placed under such a suffix keeps it on every later run.

Threads of one process choosing a name in one folder take a lock per (folder, planned name)
across the choice *and* the create, so two of them never pick the same free name. Writers in
different processes can still race to one name; nothing is lost then (each document still finds
its own file), the two files merely share a name, as Drive allows.
"""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING, Any

from invoicesync import DocumentError
from invoicesync.naming import NameRules, with_suffix_number

from .client import DriveClient, quote

if TYPE_CHECKING:
    from .listing import FolderListings

#: Drive takes almost any character in a name; only our own separator and control characters go.
DRIVE_RULES = NameRules(max_bytes=255, forbidden="/\\", reserved=frozenset())
#: Candidates asked about in one ``files.list`` call (``name = a or name = b ...``).
_BATCH = 10
#: Give up after this many taken names: something is wrong with the folder, not with us.
_MAX_SUFFIX = 200

#: A fixed set of locks shared out by hash: one lock per name ever planned would be kept for the
#: life of the process (thousands per run, and ``serve`` runs for months). Two names that share a
#: stripe merely wait for each other; a holder never takes a second name lock, so none deadlocks.
_STRIPES = tuple(threading.Lock() for _ in range(64))


def name_lock(account: str, folder_id: str, planned: str) -> threading.Lock:
    return _STRIPES[hash((account, folder_id, planned)) % len(_STRIPES)]


def is_variant(name: str, planned: str) -> bool:
    """``name`` is ``planned`` itself or ``planned`` with a `` (n)`` collision suffix."""
    if name == planned:
        return True
    stem, dot, ext = planned.rpartition(".")  # split as ``with_suffix_number`` does
    if not dot:
        stem, ext = planned, ""
    match = re.fullmatch(re.escape(stem) + r" \((\d+)\)" + (re.escape("." + ext) if ext else ""), name)
    return match is not None and int(match.group(1)) >= 2


def free_name(client: DriveClient, folder_id: str, planned: str, owner: dict[str, str], document_id: str,
              listings: FolderListings | None = None) -> str:
    """The first of ``planned``, ``planned (2)``, ... that no file in the folder holds, except a
    file whose ``appProperties`` include all of ``owner`` (that one is ours: the name is free).
    ``listings``: the run's folder listings, which answer without a request once the folder is listed."""
    for first in range(1, _MAX_SUFFIX + 1, _BATCH):
        candidates = [planned if n == 1 else with_suffix_number(planned, n) for n in range(first, first + _BATCH)]
        if listings is not None:
            taken = listings.taken(client, folder_id, candidates, owner)
        else:
            names = " or ".join(f"name = {quote(c)}" for c in candidates)
            q = f"{quote(folder_id)} in parents and trashed = false and ({names})"
            taken = {str(f.get("name")) for f in client.list_files(q, "id,name,appProperties") if not _owned(f, owner)}
        for candidate in candidates:
            if candidate not in taken:
                return candidate
    raise DocumentError(f"every name from {planned!r} to its ({_MAX_SUFFIX}) variant is taken in its Drive folder",
                        document=document_id, field="name")


def _owned(file: dict[str, Any], owner: dict[str, str]) -> bool:
    props = file.get("appProperties") or {}
    return all(props.get(k) == v for k, v in owner.items())
