"""Nothing lost, nothing twice: SIGKILL the real ``invoicesync sync`` over and over, at aimed
moments in listing, fetch, push (every target at once) and ledger writes; then one clean run.

Every target's own store must then hold each document exactly once, nothing missing, nothing
corrupt, nothing half-written. When the work runs out before the kills do, the source changes a
few documents (a new PDF each), so later kills land in updates too.
"""

from __future__ import annotations

import random
import subprocess
from collections import Counter
from dataclasses import dataclass, field

import pytest

from ._audit import Counts
from ._runner import PHASES, run_plain, run_sync
from .conftest import LONG, SCALE, Reliability, failures, record

#: Kill at the n-th event of a phase, n drawn from 1..this: small, so each run gets only a little
#: further than the last and the kills spread over the whole job.
REACH = {"listing": 6, "fetch": 24, "push": 60, "ledger": 30}
#: A killed process may linger a moment before the kill lands; each delay is one more aim.
DELAYS = (0.0, 0.0, 0.0, 0.002, 0.01, 0.05)


@dataclass
class CrashLoop:
    runs: int = 0
    kills: Counter[str] = field(default_factory=Counter)
    hangs: list[str] = field(default_factory=list)
    edits: int = 0
    first_clean: subprocess.CompletedProcess[str] | None = None  #: the run right after the last kill
    final: subprocess.CompletedProcess[str] | None = None
    counts: dict[str, Counts] = field(default_factory=dict)

    def summary(self) -> str:
        return (f"seed {SCALE.seed}: {self.runs} runs, kills {dict(self.kills)}, {self.edits} source edits; "
                f"run after the kills exit {self.first_clean and self.first_clean.returncode}, "
                f"final run exit {self.final and self.final.returncode}")


@pytest.fixture(scope="module")
def crash_loop(reliability: Reliability) -> CrashLoop:
    rng = random.Random(SCALE.seed)
    world, home = reliability.world, reliability.homes["crash"]
    folder, ports = world.folder(home), world.ports()
    loop = CrashLoop()
    while sum(loop.kills.values()) < SCALE.kills and loop.runs < SCALE.kills * 3:
        loop.runs += 1
        phase = PHASES[loop.runs % len(PHASES)]
        aim = (phase, rng.randint(1, REACH[phase]))
        result = run_sync(home, folder, ports, kill_at=aim, delay=rng.choice(DELAYS))
        if result.hung:
            loop.hangs.append(f"run {loop.runs} aimed at {aim}: no end after {result.seconds:.0f}s")
        if result.killed_in:
            loop.kills[result.killed_in] += 1
        elif result.exit_code == 0:
            loop.edits += reliability.change_some_documents(loop.runs)  # all delivered: give it more work
    loop.first_clean = run_plain(home)
    loop.final = run_plain(home) if loop.first_clean.returncode != 0 else loop.first_clean
    loop.counts = reliability.audit("crash")
    record("crash", loop.counts, kills=dict(loop.kills))
    return loop


def test_every_target_holds_each_document_once_after_repeated_sigkills(crash_loop: CrashLoop) -> None:
    loop = crash_loop
    assert not loop.hangs, loop.summary() + "\n" + "\n".join(loop.hangs)
    assert sum(loop.kills.values()) >= SCALE.kills, loop.summary()
    assert all(loop.kills[p] for p in PHASES), loop.summary()
    assert loop.final is not None and loop.final.returncode == 0, (
        f"{loop.summary()}\n{loop.final and loop.final.stdout}\n{loop.final and loop.final.stderr}")
    harm = {name: c.lost + c.duplicated + c.corrupt for name, c in loop.counts.items()}
    assert not any(harm.values()), loop.summary() + "\n" + failures(loop.counts)
    if LONG:  # the short run's kills land in a leftover window by chance; test_leftovers.py aims there
        assert not any(c.leftovers for c in loop.counts.values()), loop.summary() + "\n" + failures(loop.counts)


def test_the_run_right_after_the_kills_delivers_everything(crash_loop: CrashLoop) -> None:
    first = crash_loop.first_clean
    assert first is not None and first.returncode == 0, f"{crash_loop.summary()}\n{first and first.stdout}"
