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
from typing import Any

from invoicesync import DocumentError
from invoicesync.naming import NameRules, with_suffix_number

from .client import DriveClient, quote

#: Drive takes almost any character in a name; only our own separator and control characters go.
DRIVE_RULES = NameRules(max_bytes=255, forbidden="/\\", reserved=frozenset())
#: Candidates asked about in one ``files.list`` call (``name = a or name = b ...``).
_BATCH = 10
#: Give up after this many taken names: something is wrong with the folder, not with us.
_MAX_SUFFIX = 200

_registry_lock = threading.Lock()
_locks: dict[tuple[str, str, str], threading.Lock] = {}


def name_lock(account: str, folder_id: str, planned: str) -> threading.Lock:
    with _registry_lock:
        return _locks.setdefault((account, folder_id, planned), threading.Lock())


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
              listed: list[dict[str, Any]] | None = None) -> str:
    """The first of ``planned``, ``planned (2)``, ... that no file in the folder holds, except a
    file whose ``appProperties`` include all of ``owner`` (that one is ours: the name is free).
    ``listed``: the folder's files, when the run has listed it already (no request then)."""
    for first in range(1, _MAX_SUFFIX + 1, _BATCH):
        candidates = [planned if n == 1 else with_suffix_number(planned, n) for n in range(first, first + _BATCH)]
        if listed is not None:
            found: list[dict[str, Any]] = [f for f in listed if f.get("name") in candidates]
        else:
            names = " or ".join(f"name = {quote(c)}" for c in candidates)
            q = f"{quote(folder_id)} in parents and trashed = false and ({names})"
            found = list(client.list_files(q, "id,name,appProperties"))
        taken = {f.get("name") for f in found if not _owned(f, owner)}
        for candidate in candidates:
            if candidate not in taken:
                return candidate
    raise DocumentError(f"every name from {planned!r} to its ({_MAX_SUFFIX}) variant is taken in its Drive folder",
                        document=document_id, field="name")


def _owned(file: dict[str, Any], owner: dict[str, str]) -> bool:
    props = file.get("appProperties") or {}
    return all(props.get(k) == v for k, v in owner.items())
