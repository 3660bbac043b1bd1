"""A killed run's claims are taken over at once when its owner is provably gone: its process died
(or its pid now names another process), or the run taking the claim holds the home's runner lock.
Claims from other hosts, or from live processes of runs that bypassed the lock, wait for the lease."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from invoicesync.processes import ProcessIdentity
from invoicesync.state import RunnerInfo
from invoicesync.state._sql import SqlStore

CLAIMER = """
import sys, time
from invoicesync.state import SqliteStore
if sys.argv[1].startswith("postgresql:"):
    from invoicesync.state._postgres import PostgresStore as SqliteStore
store = SqliteStore(sys.argv[1])
assert store.claim("d1", "t", "child-run", lease=600)
print("claimed", flush=True)
time.sleep(600)
"""
OpenStore = Callable[..., SqlStore]


def _claiming_child(state: str) -> subprocess.Popen[str]:
    child = subprocess.Popen([sys.executable, "-c", CLAIMER, state], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "claimed"
    return child


def test_a_live_processs_claim_waits_and_a_killed_ones_is_taken_over_at_once(
        open_store: OpenStore, state_backend: str) -> None:
    store = open_store()
    child = _claiming_child(state_backend)
    try:
        assert not store.claim("d1", "t", "my-run", lease=600)  # alive, and no lock held: it keeps it
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert store.claim("d1", "t", "my-run", lease=600)  # long before its lease ends
    assert not store.claim("d1", "t", "third-run", lease=600)  # now mine, and I am alive


def test_a_claim_whose_pid_now_names_another_process_is_taken_over(open_store: OpenStore) -> None:
    store = open_store()
    assert store.claim("d1", "t", "old-run", lease=600)
    me = ProcessIdentity.current()
    assert me.started is not None, "this test needs /proc"
    store._exec("UPDATE claims SET owner_started = ?", (str(int(me.started) - 1),))  # started before us
    assert store.claim("d1", "t", "new-run", lease=600)


def test_the_run_holding_the_runner_lock_takes_over_claims_of_other_runs_from_here(open_store: OpenStore) -> None:
    store = open_store()
    assert store.claim("d1", "t", "finished-run", lease=600)  # this process is alive: only the lock tells
    assert not store.claim("d1", "t", "new-run", lease=600)
    with store.runner_lock(RunnerInfo.current(token="new-run")):
        assert not store.claim("d1", "t", "not-the-lock-holder", lease=600)
        assert store.claim("d1", "t", "new-run", lease=600)
    assert not store.claim("d1", "t", "later-run", lease=600)  # the lock is no longer held by a run


def test_claims_from_another_host_wait_for_their_lease_even_under_the_lock(open_store: OpenStore) -> None:
    store = open_store()
    assert store.claim("d1", "t", "remote-run", lease=600)
    store._exec("UPDATE claims SET owner_host = 'elsewhere', owner_pid = 999999999")
    with store.runner_lock(RunnerInfo.current(token="new-run")):
        assert not store.claim("d1", "t", "new-run", lease=600)
    store._exec("UPDATE claims SET expires_at = 0")
    assert store.claim("d1", "t", "new-run", lease=600)


def test_an_identity_is_gone_only_when_that_is_certain() -> None:
    me = ProcessIdentity.current()
    assert me.is_here() and not me.is_gone()
    assert not ProcessIdentity("elsewhere", 999999999, None).is_gone()  # another host: unknown
    assert not ProcessIdentity(me.host, os.getpid(), None).is_gone()  # alive, start time unknown
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert ProcessIdentity(me.host, child.pid, None).is_gone()


def test_a_claim_from_before_owners_were_recorded_waits_for_its_lease(open_store: OpenStore) -> None:
    old = open_store(target_version=6)
    old._exec("INSERT INTO claims VALUES ('d1', 't', 'old-run', ?)", (time.time() + 600,))
    old.close()
    store = open_store()
    with store.runner_lock(RunnerInfo.current(token="new-run")):
        assert not store.claim("d1", "t", "new-run", lease=600)  # its owner cannot be judged
