"""Count lost, duplicated, corrupt and leftover from what each target itself holds.

Nothing here reads invoicesync's ledger. A faulty home's targets are compared with the targets of
a clean home synced once from the same source: the clean one says which source files a target
should hold (that differs per target: BC takes purchase documents only, the folder writes a data
JSON beside each PDF...), and is itself checked against the source files read from Billit.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._world import SourceFile

TEMP_MARKERS = (".part", ".tmp", ".partial", "~")


@dataclass
class Holding:
    """What one target holds: content objects by SHA-256, logical keys, and half-done things."""

    hashes: Counter[str] = field(default_factory=Counter)
    keys: Counter[str] = field(default_factory=Counter)  #: one per document-like record (BC draft, data JSON)
    structural: Counter[str] = field(default_factory=Counter)  #: things that must exist once (folders, vendors)
    names: dict[str, str] = field(default_factory=dict)  #: a name per hash, for messages
    leftovers: list[str] = field(default_factory=list)


@dataclass
class Counts:
    lost: int = 0
    duplicated: int = 0
    corrupt: int = 0
    leftovers: int = 0
    details: list[str] = field(default_factory=list)

    def total(self) -> int:
        return self.lost + self.duplicated + self.corrupt + self.leftovers


def _temp_like(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return base.startswith((".invoicesync-", "~")) or base.endswith(TEMP_MARKERS)


def folder_holding(folder: Path) -> Holding:
    import hashlib

    holding = Holding()
    if not folder.exists():
        return holding
    for dirpath, _, filenames in os.walk(folder):
        for filename in filenames:
            path = Path(dirpath) / filename
            relative = str(path.relative_to(folder))
            if _temp_like(relative) or path.stat().st_size == 0:
                holding.leftovers.append(f"{relative} ({path.stat().st_size} bytes)")
            elif filename.endswith(".json"):
                holding.keys[relative] += 1  # the data JSON is ours, not a source file: count it by name
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                holding.hashes[digest] += 1
                holding.names[digest] = relative
    return holding


def blob_temp_holding(home: Path) -> Holding:
    holding = Holding()
    tmp = home / "blobs" / "tmp"
    if tmp.exists():
        holding.leftovers += [f"blobs/tmp/{p.name}" for p in tmp.iterdir()]
    return holding


def dropbox_holding(store: dict[str, Any]) -> Holding:
    holding = Holding()
    for item in store["files"]:
        if _temp_like(item["path"]) or not item["size"] or item["sha256"] is None:
            holding.leftovers.append(f"{item['path']} ({item['size']} bytes)")
        else:
            holding.hashes[item["sha256"]] += 1
            holding.names[item["sha256"]] = item["path"]
    return holding


def gdrive_holding(store: dict[str, Any]) -> Holding:
    holding = Holding()
    folders = {f["id"]: f for f in store["folders"]}

    def path_of(parents: list[str]) -> str:
        names: list[str] = []
        parent = parents[0] if parents else None
        while parent in folders and len(names) < 50:
            names.append(folders[parent]["name"])
            parent = (folders[parent]["parents"] or [None])[0]
        return "/".join(reversed(names))

    for folder in store["folders"]:
        holding.structural[f"folder {path_of(folder['parents'])}/{folder['name']}"] += 1
    for item in store["files"]:
        name = f"{path_of(item['parents'])}/{item['name']}"
        if _temp_like(item["name"]) or not item["size"] or item["sha256"] is None:
            holding.leftovers.append(f"{name} ({item['size']} bytes, id {item['id']})")
        else:
            holding.hashes[item["sha256"]] += 1
            holding.names[item["sha256"]] = name
    return holding


def bc_holding(store: dict[str, Any]) -> Holding:
    holding = Holding()
    for company in store["companies"]:
        drafts = {d["id"]: d for d in company["drafts"]}
        with_files: Counter[str] = Counter()
        for vendor in company["vendors"]:
            holding.structural[f"vendor {vendor}"] += 1  # name and VAT: namesakes may be different firms
        for attachment in company["attachments"]:
            if attachment["parent"] not in drafts:
                holding.leftovers.append(f"orphan attachment {attachment['name']} (parent {attachment['parent']})")
            elif not attachment["size"] or attachment["sha256"] is None:
                holding.leftovers.append(f"empty attachment {attachment['name']} on a draft")
            else:
                with_files[attachment["parent"]] += 1
                holding.hashes[attachment["sha256"]] += 1
                holding.names[attachment["sha256"]] = attachment["name"]
        for draft in drafts.values():
            holding.keys[f"{draft['set']} {draft['vendor']} {draft['vendor_number']}"] += 1
            if not with_files[draft["id"]]:
                holding.leftovers.append(f"draft without attachments: {draft['vendor']} {draft['vendor_number']}")
    return holding


def compare(actual: Holding, reference: Holding, current: set[str]) -> Counts:
    """``actual`` against the clean ``reference``: each difference is counted once, by kind.

    ``current``: the hashes of the source files as they are now. The reference home synced
    before every source edit, so it saw every version; a home that did not (it started later)
    may rightly lack an older version a keep-both target kept, but never more copies of one."""
    counts = Counts()
    for digest, wanted in reference.hashes.items():
        have = actual.hashes.get(digest, 0)
        if have < wanted and digest not in current:
            continue
        if have < wanted:
            counts.lost += wanted - have
            counts.details.append(f"lost: {reference.names[digest]} (sha256 {digest[:12]})")
        elif have > wanted:
            counts.duplicated += have - wanted
            counts.details.append(f"duplicated x{have - wanted}: {reference.names[digest]}")
    for digest, have in actual.hashes.items():
        if digest not in reference.hashes:
            counts.corrupt += have
            counts.details.append(f"corrupt or unexpected: {actual.names[digest]} (sha256 {digest[:12]})")
    for kind, (mine, theirs) in {"record": (actual.keys, reference.keys),
                                 "structure": (actual.structural, reference.structural)}.items():
        for key in set(mine) | set(theirs):
            have, wanted = mine.get(key, 0), theirs.get(key, 0)
            if have < wanted:
                counts.lost += wanted - have
                counts.details.append(f"lost {kind}: {key}")
            elif have > wanted:
                counts.duplicated += have - wanted
                counts.details.append(f"duplicated {kind} x{have - wanted}: {key}")
    counts.leftovers = len(actual.leftovers)
    counts.details += [f"leftover: {item}" for item in actual.leftovers]
    return counts


def check_reference(name: str, reference: Holding, source: list[SourceFile]) -> list[str]:
    """Problems of the clean run itself: files that are no source file, duplicates, leftovers."""
    by_hash = Counter(f.sha256 for f in source)
    problems = [f"{name}: clean run wrote {reference.names[d]}, which is no source file"
                for d in reference.hashes if d not in by_hash]
    problems += [f"{name}: clean run wrote {reference.names[d]} {n} times (source has it {by_hash[d]} times)"
                 for d, n in reference.hashes.items() if d in by_hash and n > by_hash[d]]
    problems += [f"{name}: clean run left {item}" for item in reference.leftovers]
    problems += [f"{name}: clean run holds {key} {n} times" for key, n in reference.structural.items() if n > 1]
    if not reference.hashes:
        problems.append(f"{name}: the clean run delivered nothing")
    return problems
