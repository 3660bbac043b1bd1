"""Nothing lost, nothing twice: SIGKILL the real ``invoicesync sync`` over and over, at aimed
moments in listing, fetch, push (every target at once) and ledger writes; then one clean run.

Every target's own store must then hold each document exactly once, nothing missing, nothing
corrupt, nothing half-written. When the work runs out before the kills do, the source changes a
few documents (a new PDF each), so later kills land in updates too.
"""

from __future__ import annotations

import random
from collections import Counter

from ._runner import PHASES, run_plain, run_sync
from .conftest import LONG, SCALE, Reliability, failures, record

#: Kill at the n-th event of a phase, n drawn from 1..this: small, so each run gets only a little
#: further than the last and the kills spread over the whole job.
REACH = {"listing": 6, "fetch": 24, "push": 60, "ledger": 30}
#: A killed process may linger a moment before the kill lands; each delay is one more aim.
DELAYS = (0.0, 0.0, 0.0, 0.002, 0.01, 0.05)


def test_every_target_holds_each_document_once_after_repeated_sigkills(reliability: Reliability) -> None:
    rng = random.Random(SCALE.seed)
    world, home = reliability.world, reliability.homes["crash"]
    folder, ports = world.folder(home), world.ports()
    kills: Counter[str] = Counter()
    hangs: list[str] = []
    edits = 0
    runs = 0
    while sum(kills.values()) < SCALE.kills and runs < SCALE.kills * 3:
        runs += 1
        phase = PHASES[runs % len(PHASES)]
        aim = (phase, rng.randint(1, REACH[phase]))
        result = run_sync(home, folder, ports, kill_at=aim, delay=rng.choice(DELAYS))
        if result.hung:
            hangs.append(f"run {runs} aimed at {aim}: no end after {result.seconds:.0f}s")
        if result.killed_in:
            kills[result.killed_in.split()[0]] += 1
        elif result.exit_code == 0:
            edits += reliability.change_some_documents(runs)  # all delivered: give it more work
    final = run_plain(home)
    counts = reliability.audit("crash")
    record("crash", counts, kills=dict(kills))
    summary = (f"seed {SCALE.seed}: {runs} runs, kills {dict(kills)}, {edits} source edits; "
               f"final run exit {final.returncode}")
    assert not hangs, summary + "\n" + "\n".join(hangs)
    assert sum(kills.values()) >= SCALE.kills, summary
    assert all(kills[p] for p in PHASES), summary
    assert final.returncode == 0, f"{summary}\n{final.stdout}\n{final.stderr}"
    harm = {name: c.lost + c.duplicated + c.corrupt for name, c in counts.items()}
    assert not any(harm.values()), summary + "\n" + failures(counts)
    if LONG:  # the short run's kills land in a leftover window by chance; test_leftovers.py aims there
        assert not any(c.leftovers for c in counts.values()), summary + "\n" + failures(counts)

