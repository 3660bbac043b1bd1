"""``serve`` with the Celery executor: its schedules (and Sync now) enqueue the work for
``invoicesync worker`` processes instead of syncing in the server's own process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from invoicesync.sandbox import RunningSandbox
from invoicesync.server import _jobs
from invoicesync.server._jobs import SyncJobs
from invoicesync.workspace import Workspace

from ._world import ACCOUNTS, Holdings, Targets, Workers, assert_same_targets, delivered_twice, environment, make_home


def test_a_scheduled_job_of_serve_runs_on_the_workers(
        tmp_path: Path, small_billit: RunningSandbox, small_reference: Holdings, targets: Targets,
        postgres_url: str, broker_url: str, queue: str, monkeypatch: pytest.MonkeyPatch) -> None:
    home = make_home(tmp_path / "home", small_billit, targets, accounts=ACCOUNTS, state_url=postgres_url,
                     broker_url=broker_url, queue=queue)
    with (home / "invoicesync.toml").open("a") as config:  # the [celery] table is the file's last
        config.write('executor = "celery"\n')
    workers = Workers(home, environment())
    workers.start(2)

    def no_local_sync(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the server synced in its own process")

    monkeypatch.setattr(_jobs, "run_sync", no_local_sync)
    monkeypatch.setenv("INVOICESYNC_SECRETS", "file")
    monkeypatch.delenv("INVOICESYNC_EXECUTOR", raising=False)
    try:
        with Workspace.open(home) as workspace:
            jobs = SyncJobs(workspace)
            job = jobs.start_if_idle(trigger="schedule")
            assert job is not None
            assert job.done.wait(600), "the scheduled job did not finish"
    finally:
        workers.stop()
    assert job.error is None
    assert job.report is not None and job.report.exit_code == 0, (job.report and job.report.as_dict(),
                                                                  workers.logs())
    assert_same_targets(targets, small_reference)
    assert delivered_twice(postgres_url) == []
