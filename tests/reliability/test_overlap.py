"""Overlapping runs: two real ``invoicesync sync`` on one home at once (a cron run and a manual
one), each time with a backlog for the remote targets (a run that imported and delivered to the
local folder only, as after an outage of those services), so both find the same deliveries to make.
Whatever each run says, the targets must end up with each document exactly once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ._runner import RUN_TIMEOUT, environment, run_plain
from ._world import LOCAL
from .conftest import LONG, Reliability, failures, record

#: Rounds of "both at once"; between rounds the source changes a few documents (more work).
ROUNDS = 3 if LONG else 1


def _sync_twice_at_once(home: Path) -> list[int]:
    """A plain ``sync`` (cron: gives way if another run holds the home) and a ``sync --wait`` (a
    person: queues behind it), started together."""
    command = [sys.executable, "-m", "invoicesync", "--home", str(home), "sync"]
    both = [subprocess.Popen(command + extra, env=environment(home), cwd=home.parent, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
            for extra in ([], ["--wait", "120"])]
    codes = []
    for process in both:
        try:
            process.communicate(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
        codes.append(process.returncode)
    return codes


def test_two_syncs_at_once_on_one_home_deliver_each_document_once(reliability: Reliability) -> None:
    home = reliability.homes["overlap"]
    exits: list[list[int]] = []
    for round_number in range(ROUNDS):
        if round_number:
            reliability.change_some_documents(100 + round_number)
        backlog = run_plain(home, "--account", "billit", "--account", LOCAL)
        assert backlog.returncode == 0, backlog.stdout + backlog.stderr
        exits.append(_sync_twice_at_once(home))
    final = run_plain(home)
    counts = reliability.audit("overlap")
    record("overlap", counts)
    summary = f"{ROUNDS} rounds of two syncs at once, exits {exits}; final run exit {final.returncode}"
    assert all(c.total() == 0 for c in counts.values()), summary + "\n" + failures(counts)
    assert final.returncode == 0, f"{summary}\n{final.stdout}\n{final.stderr}"
