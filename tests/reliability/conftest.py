"""Fixtures of the reliability suite: one set of sandbox processes per session, a clean reference
home, and the table ``make reliability`` prints.

``INVOICESYNC_RELIABILITY=long`` (what ``make reliability`` sets) runs the long version: ≥ 100
SIGKILLs, a longer storm. Without it (``make test``) the same tests run short.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ._audit import (
    Counts,
    Holding,
    bc_holding,
    blob_temp_holding,
    check_reference,
    compare,
    dropbox_holding,
    folder_holding,
    gdrive_holding,
)
from ._runner import run_plain
from ._world import LOCAL, SourceFile, World, make_home, source_files, world

LONG = os.environ.get("INVOICESYNC_RELIABILITY", "") == "long"
#: Homes, each with its own copy of the target sandboxes: the reference and one per test.
COPIES = {"reference": 0, "crash": 1, "storm": 2, "overlap": 3, "tokens": 4}
TARGETS = (LOCAL, "dropbox", "gdrive", "dynamics365", "home")


@dataclass(frozen=True)
class Scale:
    documents: int  #: per Billit company (the sandbox has two)
    kills: int
    storm_runs: int
    fault_rate: float
    token_endpoint_faults: bool  #: the storm fails OAuth/Entra token requests too
    seed: int


SCALE = (Scale(documents=30, kills=100, storm_runs=12, fault_rate=0.2, token_endpoint_faults=True,
               seed=20261201) if LONG
         else Scale(documents=3, kills=4, storm_runs=4, fault_rate=0.2, token_endpoint_faults=False,
                    seed=20261201))


@dataclass
class Row:
    kills: dict[str, int] = field(default_factory=dict)
    faults: int = 0
    counts: Counts = field(default_factory=Counts)


#: test name → target → row; printed at the end of the session.
RESULTS: dict[str, dict[str, Row]] = {}


class Reliability:
    """The session's world, the reference home, and the audit of any home against it."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.homes = {name: make_home(world, name, copy) for name, copy in COPIES.items()}
        #: Every version of every source file seen so far: a target keeping both versions of a
        #: changed document (Dropbox's default) rightly holds an older one.
        self.source: list[SourceFile] = []
        self.current: set[str] = set()  #: the source files' hashes as they are now
        self.rng = random.Random(SCALE.seed)
        self._reference: dict[str, Holding] | None = None  #: valid until the source changes
        self._read_source()

    def _read_source(self) -> None:
        now = source_files(self.world.billit)
        known = {(f.order_id, f.name, f.sha256) for f in self.source}
        self.source += [f for f in now if (f.order_id, f.name, f.sha256) not in known]
        self.current = {f.sha256 for f in now}

    def local_home(self, name: str) -> Path:
        """A new home with the Billit account and a local folder only (no remote target)."""
        return make_home(self.world, name, None)

    def change_some_documents(self, tag: int) -> int:
        """Edit a few orders in the Billit sandbox (its admin API): a new PaymentReference, so a new
        PDF. The reference home syncs first, so it sees every version the home under test saw (a
        target whose policy is to keep both versions then holds the same files in both)."""
        self.reference()
        orders = sorted({f.order_id for f in self.source})
        chosen = self.rng.sample(orders, min(3, len(orders)))
        for order_id in chosen:
            self.world.billit.admin("POST", f"orders/{order_id}", {"PaymentReference": f"+++{tag:03d}/{order_id}+++"})
        self._reference = None
        return len(chosen)

    def reference(self) -> dict[str, Holding]:
        """Sync the reference home cleanly (no fault is set then) and read what its targets hold."""
        for sandbox in self.world.all_sandboxes():
            sandbox.clear_faults()
        if self._reference is not None:
            return self._reference
        home = self.homes["reference"]
        result = run_plain(home)
        assert result.returncode == 0, f"the clean reference sync failed:\n{result.stdout}\n{result.stderr}"
        holdings = self.holdings("reference")
        self._read_source()  # the source may have changed since (edits)
        problems = [p for name, h in holdings.items() if name != "home" for p in check_reference(name, h, self.source)]
        assert not problems, "the clean reference run itself is wrong:\n" + "\n".join(problems)
        self._reference = holdings
        return holdings

    def holdings(self, home_name: str) -> dict[str, Holding]:
        home, copy = self.homes[home_name], COPIES[home_name]
        stores = {plugin: self.world.targets[f"{plugin}:{copy}"].store()
                  for plugin in ("dropbox", "gdrive", "dynamics365")}
        return {LOCAL: folder_holding(self.world.folder(home)), "dropbox": dropbox_holding(stores["dropbox"]),
                "gdrive": gdrive_holding(stores["gdrive"]), "dynamics365": bc_holding(stores["dynamics365"]),
                "home": blob_temp_holding(home)}

    def audit(self, home_name: str) -> dict[str, Counts]:
        reference = self.reference()
        actual = self.holdings(home_name)
        return {name: compare(actual[name], reference[name], self.current) for name in TARGETS}


@pytest.fixture(scope="session")
def reliability() -> Iterator[Reliability]:
    root = Path(tempfile.mkdtemp(prefix="invoicesync-reliability-"))
    try:
        with world(root, documents=SCALE.documents, seed=SCALE.seed, target_copies=len(COPIES)) as started:
            yield Reliability(started)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def record(test: str, counts: dict[str, Counts], *, kills: dict[str, int] | None = None,
           faults: dict[str, int] | None = None) -> None:
    RESULTS[test] = {name: Row(dict(kills or {}), (faults or {}).get(name, 0), c) for name, c in counts.items()}


def failures(counts: dict[str, Counts]) -> str:
    """A readable list of every difference, for an assertion message."""
    lines = []
    for name, c in counts.items():
        lines += [f"{name}: {detail}" for detail in c.details[:40]]
    return "\n".join(lines)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RESULTS:
        return
    write = terminalreporter.write_line
    terminalreporter.section("reliability: from each target's own store, never from the ledger")
    phases = ("listing", "fetch", "push", "ledger")
    write(f"{'test':<10} {'target':<12} " + " ".join(f"{'kill:' + p:>12}" for p in phases)
          + f" {'faults':>7} {'lost':>5} {'dup':>5} {'corrupt':>8} {'leftover':>9}")
    for test, rows in RESULTS.items():
        for target, row in rows.items():
            kills = " ".join(f"{row.kills.get(p, 0):>12}" for p in phases)
            c = row.counts
            write(f"{test:<10} {target:<12} {kills} {row.faults:>7} {c.lost:>5} {c.duplicated:>5} {c.corrupt:>8} "
                  f"{c.leftovers:>9}")
