"""The leases a Celery task holds in the PostgreSQL state: one import of an (account, company) at
a time, any number of tasks beside each other but never beside a plain ``sync``, and nothing left
behind by a task killed with its worker."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable

import pytest
from invoicesync.distributed import TaskLeases
from invoicesync.distributed._leases import LeaseBusy
from invoicesync.distributed._wire import add_part, report_part
from invoicesync.pipeline import SyncReport
from invoicesync.state import RunnerBusy, RunnerInfo
from invoicesync.state._pglock import AdvisoryRunnerLock
from invoicesync.state._sql import SqlStore

HOLDER = """
import sys, time
from invoicesync.distributed import TaskLeases
with TaskLeases(sys.argv[1]).hold(company="billit/1", wait=5):
    print("held", flush=True)
    time.sleep(600)
"""


def test_one_import_per_company_at_a_time_and_tasks_side_by_side(postgres_url: str) -> None:
    leases = TaskLeases(postgres_url)
    with leases.hold(company="billit/1", wait=1):
        started = time.monotonic()
        with pytest.raises(LeaseBusy, match="billit/1 is being imported by another task"), \
                leases.hold(company="billit/1", wait=0.5):
            pass
        assert time.monotonic() - started >= 0.5  # it waited for the lease before giving up
        with leases.hold(company="billit/2", wait=1), leases.hold(wait=1):  # other companies, export tasks
            pass
    with leases.hold(company="billit/1", wait=1):  # released with its connection
        pass


def test_a_plain_sync_and_the_tasks_exclude_each_other(postgres_url: str) -> None:
    leases = TaskLeases(postgres_url)
    runner = AdvisoryRunnerLock(postgres_url)
    me = RunnerInfo.current("sync")
    with leases.hold(wait=1), pytest.raises(RunnerBusy) as busy, runner.hold(me):
        pass
    assert f"pid {os.getpid()} on " in str(busy.value), str(busy.value)  # the worker holding the state is named
    with runner.hold(me), pytest.raises(LeaseBusy, match="runner lock"), leases.hold(company="b/1", wait=0.3):
        pass


def test_a_killed_task_leaves_its_company_free_at_once(postgres_url: str) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, postgres_url], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(LeaseBusy), TaskLeases(postgres_url).hold(company="billit/1", wait=0.2):
            pass
        holder.kill()
        holder.wait()
        with TaskLeases(postgres_url).hold(company="billit/1", wait=5):  # the server dropped the lock
            pass
    finally:
        holder.kill()
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()


def test_the_answers_of_the_tasks_add_up_to_one_report() -> None:
    first, second, total = SyncReport(), SyncReport(), SyncReport()
    first.count_import("billit-0", "new")
    first.count_export("folder", "skipped", reason="filtered out")
    second.count_import("billit-0", "new")
    second.count_import("billit-1", "failed")
    second.problem("billit-1/7", "42", "boom")
    for part in (first, second):
        add_part(total, report_part(part))
    assert total.imported == Counter({"new": 2, "failed": 1})
    assert total.imported_by_account["billit-0"] == Counter({"new": 2})
    assert total.skipped_reasons == {"folder": Counter({"filtered out": 1})}
    assert [p.message for p in total.problems] == ["boom"] and total.exit_code == 1


def test_claimed_elsewhere_names_the_live_claims_only(open_store: Callable[..., SqlStore]) -> None:
    store = open_store()
    assert store.claim("live", "dropbox", "task-a", 180)
    assert store.claim("expired", "dropbox", "task-a", -1)
    assert store.claim("other-target", "folder", "task-a", 180)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert store.claim("dead-owner", "dropbox", "task-b", 180)
    store._exec("UPDATE claims SET owner_pid = ?, owner_started = NULL WHERE document_id = 'dead-owner'",
                (dead.pid,))
    ids = ["live", "expired", "other-target", "dead-owner", "free"]
    assert store.claimed_elsewhere("dropbox", ids) == {"live"}
    store.release_claim("live", "dropbox", "task-a")
    assert store.claimed_elsewhere("dropbox", ids) == set()


def test_a_finished_task_frees_its_locks_and_leaves_its_connection_to_the_next(postgres_url: str) -> None:
    leases, other = TaskLeases(postgres_url), TaskLeases(postgres_url)
    try:
        with leases.hold(company="billit/1", wait=1):
            pass
        with other.hold(company="billit/1", wait=0.2):  # free, though the connection that held it lives on
            pass
        [kept] = leases._idle
        with leases.hold(company="billit/2", wait=1):
            assert leases._idle == []  # the next task took it rather than a new one
        assert leases._idle == [kept]
        kept.close()  # a connection lost while idle (a server restart): the next task opens another
        with leases.hold(company="billit/1", wait=1), pytest.raises(LeaseBusy), \
                other.hold(company="billit/1", wait=0.2):
            pass
        assert len(leases._idle) == 1 and leases._idle[0] is not kept
    finally:
        leases.close()
        other.close()
