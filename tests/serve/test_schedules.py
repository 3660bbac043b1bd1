"""Schedules: declared in the TOML or set on the Sync page, run by the serve process one at a time,
sharing the home's runner lock with CLI syncs. The clock is injected; nothing sleeps."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from invoicesync.config import load_config
from invoicesync.errors import ConfigError
from invoicesync.plugins import Plugins
from invoicesync.schedules import Schedule, parse_form
from invoicesync.server import Scheduler, SyncJobs, Users, create_app
from invoicesync.server._jobs import SyncJob
from invoicesync.state import RunnerInfo
from invoicesync.testing import MemorySource, MemoryTarget
from invoicesync.workspace import Workspace
from starlette.testclient import TestClient

from .conftest import ADMIN, PASSWORD, Dashboard, metric_samples

START = datetime(2026, 3, 2, 9, 7, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def scheduled(memory_workspace: Workspace, clock: FakeClock) -> Iterator[Dashboard]:
    """The dashboard with its scheduler on the fake clock and no background thread: tests tick it."""
    Users(memory_workspace.home).add(ADMIN, PASSWORD)
    app = create_app(memory_workspace, allowed_hosts=["testserver"], clock=clock, schedule_poll=None)
    with TestClient(app) as client:
        dashboard = Dashboard(client, memory_workspace)
        dashboard.login()
        yield dashboard


def scheduler_of(dashboard: Dashboard) -> Scheduler:
    scheduler: Scheduler = dashboard.client.app.state.scheduler  # type: ignore[attr-defined]
    return scheduler


def finish(job: SyncJob | None) -> SyncJob:
    assert job is not None, "nothing was due"
    assert job.done.wait(60), "the sync did not finish"
    return job


def row_of(page: str, account: str) -> str:
    match = re.search(rf"<tr>\s*<td>{account}\b.*?</tr>", page, re.S)
    assert match, f"no row for {account}"
    return html.unescape(match.group(0))


# -- the schedule itself ---------------------------------------------------------------------------

def test_an_interval_counts_from_the_last_run_and_is_due_at_once_before_any() -> None:
    every = parse_form("15m")
    assert every == Schedule(every=timedelta(minutes=15)) and every.describe() == "15m"
    assert parse_form("1h30m").describe() == "1h30m"  # type: ignore[union-attr]
    assert every.next_run(None, START) == START
    assert every.next_run(START, START - timedelta(days=1)) == START + timedelta(minutes=15)


def test_a_cron_expression_waits_for_its_next_slot_in_utc() -> None:
    cron = parse_form("0 */2 * * *")
    assert cron == Schedule(cron="0 */2 * * *")
    assert cron.next_run(None, START) == datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    assert cron.next_run(datetime(2026, 3, 2, 10, 0, tzinfo=UTC), START) == datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("text", ["15", "0s", "30s", "every day", "61 * * * *", "* * * *"])
def test_a_bad_or_too_short_schedule_is_refused(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_form(text)


def test_the_toml_declares_a_schedule_per_account_and_refuses_a_wrong_one(tmp_path: Path) -> None:
    path = tmp_path / "invoicesync.toml"
    path.write_text('[accounts.a]\nplugin = "memory"\nevery = "15m"\n'
                    '[accounts.b]\nplugin = "memory"\ncron = "0 */2 * * *"\n[accounts.c]\nplugin = "memory"\n')
    assert load_config(path).schedules() == {"a": Schedule(every=timedelta(minutes=15)),
                                             "b": Schedule(cron="0 */2 * * *")}
    for bad, says in [('every = "15m"\ncron = "0 * * * *"', "not both"), ("every = 15", "must be a string"),
                      ('cron = "0 */2 * *"', "five fields"), ('every = "soon"', "not an interval")]:
        path.write_text(f'[accounts.a]\nplugin = "memory"\n{bad}\n')
        with pytest.raises(ConfigError, match=says) as error:
            load_config(path)
        assert "[accounts.a]" in str(error.value)


# -- the Sync page -----------------------------------------------------------------------------------

def test_the_sync_page_sets_a_schedule_behind_csrf_and_shows_the_next_run(scheduled: Dashboard) -> None:
    refused = scheduled.client.post("/sync/schedule", data={"account": "memory", "schedule": "15m"},
                                    follow_redirects=False)
    assert refused.status_code == 403  # no CSRF token
    assert scheduled.workspace.state.schedules() == {}
    scheduled.post("/sync/schedule", {"account": "memory", "schedule": "0 */2 * * *"})
    page = scheduled.client.get("/sync").text
    assert "memory now syncs on cron 0 */2 * * * (UTC)." in html.unescape(page)
    row = row_of(page, "memory")
    assert 'value="0 */2 * * *"' in row and "next run 2026-03-02T10:00:00+00:00" in row
    assert scheduled.workspace.state.schedules()["memory"].spec == "cron 0 */2 * * *"

    scheduled.post("/sync/schedule", {"account": "memory", "schedule": "every minute"})
    assert "not a cron expression" in html.unescape(scheduled.client.get("/sync").text)
    assert scheduled.workspace.state.schedules()["memory"].spec == "cron 0 */2 * * *"  # kept
    scheduled.post("/sync/schedule", {"account": "memory", "schedule": ""})
    assert "memory now syncs only when asked." in scheduled.client.get("/sync").text
    assert "next run" not in row_of(scheduled.client.get("/sync").text, "memory")


# -- running -----------------------------------------------------------------------------------------

def test_a_due_account_runs_once_then_waits_for_its_next_slot(
        scheduled: Dashboard, clock: FakeClock, memory_plugins: tuple[Plugins, MemorySource, MemoryTarget]) -> None:
    scheduler = scheduler_of(scheduled)
    assert scheduler.tick() is None  # nothing scheduled yet
    scheduled.post("/sync/schedule", {"account": "memory", "schedule": "15m"})
    job = finish(scheduler.tick())  # never run on a schedule: due at once
    assert job.trigger == "schedule" and job.accounts == ("memory",)
    assert job.report is not None and job.report.exit_code == 0 and memory_plugins[2].writes == 25
    assert scheduler.tick() is None  # just ran
    clock.advance(minutes=14, seconds=59)
    assert scheduler.tick() is None
    page = scheduled.client.get("/sync").text
    assert "Scheduled sync of memory." in page  # the live view's run
    row = row_of(page, "memory")
    assert "next run 2026-03-02T09:22:00+00:00" in row
    assert "last scheduled run 2026-03-02T09:07:00+00:00" in row and ">ok<" in row
    clock.advance(seconds=1)
    assert finish(scheduler.tick()).accounts == ("memory",)


def test_a_scheduled_run_that_finds_a_cli_sync_running_waits_and_retries_never_overlapping(
        scheduled: Dashboard, clock: FakeClock, memory_plugins: tuple[Plugins, MemorySource, MemoryTarget]) -> None:
    scheduler = scheduler_of(scheduled)
    scheduled.post("/sync/schedule", {"account": "memory", "schedule": "15m"})
    cli = RunnerInfo(pid=4242, host="here", command="invoicesync sync", since="2026-03-02T09:06:00+00:00")
    with scheduled.workspace.state.runner_lock(cli):  # a CLI (cron, systemd timer) sync holds the home
        job = finish(scheduler.tick())
        assert job.report is not None and job.report.busy and job.report.exit_code == 75
        assert memory_plugins[2].writes == 0  # nothing ran beside the CLI's sync
        record = scheduled.workspace.state.schedules()["memory"]
        assert record.last_started_at is None and record.last_result == {
            "result": "busy", "exit_code": 75, "message": job.report.busy}
        assert "invoicesync sync" in row_of(scheduled.client.get("/sync").text, "memory")  # who held it
        clock.advance(seconds=59)
        assert scheduler.tick() is None  # not hammering the lock: tried again a minute later
    clock.advance(seconds=1)
    job = finish(scheduler.tick())  # still due (the busy run did not count), and the home is free now
    assert job.report is not None and job.report.exit_code == 0 and memory_plugins[2].writes == 25
    assert scheduled.workspace.state.schedules()["memory"].last_started_at == clock.now


def test_a_running_sync_now_makes_the_schedule_wait_for_the_next_tick(scheduled: Dashboard) -> None:
    scheduler, jobs = scheduler_of(scheduled), scheduled.client.app.state.jobs  # type: ignore[attr-defined]
    scheduled.post("/sync/schedule", {"account": "memory", "schedule": "15m"})
    manual = SyncJob(("memtarget",))  # a Sync now still running
    jobs.current = manual
    assert scheduler.tick() is None
    manual.done.set()
    assert finish(scheduler.tick()).trigger == "schedule"


def test_runs_missed_while_the_server_was_down_run_once_on_start_up(
        memory_workspace: Workspace, clock: FakeClock) -> None:
    memory_workspace.state.set_schedule("memory", "every 15m")
    memory_workspace.state.record_scheduled_run("memory", START - timedelta(hours=3), START - timedelta(hours=3),
                                                {"result": "ok", "exit_code": 0})  # 12 slots ago
    jobs = SyncJobs(memory_workspace)
    scheduler = Scheduler(memory_workspace, jobs, clock=clock)  # the server starts again
    started = []
    jobs.listeners.append(started.append)
    finish(scheduler.tick())
    for _ in range(12):
        clock.advance(seconds=10)
        assert scheduler.tick() is None
    assert len(started) == 1
    clock.advance(minutes=15)
    finish(scheduler.tick())
    assert len(started) == 2


def test_accounts_declared_in_the_toml_run_on_their_cron_and_are_changed_there_only(
        workspace_factory: Callable[..., Workspace], memory_plugins: tuple[Plugins, MemorySource, MemoryTarget],
        tmp_path: Path, clock: FakeClock) -> None:
    config = tmp_path / "invoicesync.toml"
    config.write_text('[accounts.billing]\nplugin = "memory"\ncron = "30 9 * * *"\n'
                      '[accounts.archive]\nplugin = "memtarget"\n')
    workspace = workspace_factory(plugins=memory_plugins[0], config_file=config)
    Users(workspace.home).add(ADMIN, PASSWORD)
    app = create_app(workspace, allowed_hosts=["testserver"], clock=clock, schedule_poll=None)
    with TestClient(app) as client:
        dashboard = Dashboard(client, workspace)
        dashboard.login()
        scheduler = scheduler_of(dashboard)
        assert scheduler.tick() is None  # a cron waits for its slot (09:30), even on a first start
        row = row_of(client.get("/sync").text, "billing")
        assert "30 9 * * *" in row and "(config file)" in row and 'name="schedule"' not in row
        assert "next run 2026-03-02T09:30:00+00:00" in row
        dashboard.post("/sync/schedule", {"account": "billing", "schedule": "15m"})
        assert "change `every` or `cron` there" in html.unescape(client.get("/sync").text)
        clock.advance(minutes=23)
        assert finish(scheduler.tick()).accounts == ("billing",)
        assert "next run 2026-03-03T09:30:00+00:00" in row_of(client.get("/sync").text, "billing")


def test_a_scheduled_run_is_counted_in_the_metrics(scheduled: Dashboard) -> None:
    scheduled.post("/sync/schedule", {"account": "memory", "schedule": "15m"})
    finish(scheduler_of(scheduled).tick())
    samples: dict[Any, float] = metric_samples(scheduled.client.get("/metrics").text)
    assert samples["invoicesync_runs_total", (("exit_code", "0"), ("trigger", "schedule"))] == 1
    assert samples["invoicesync_run_duration_seconds_count", (("trigger", "schedule"),)] == 1
    assert samples["invoicesync_run_documents_total", (("account", "memory"), ("outcome", "new"))] == 25
    assert samples["invoicesync_run_deliveries_total", (("status", "delivered"), ("target", "memtarget"))] == 25
    assert samples["invoicesync_schedule_last_exit_code", (("account", "memory"),)] == 0
    due = samples["invoicesync_schedule_next_run_timestamp_seconds", (("account", "memory"),)]
    assert due == (START + timedelta(minutes=15)).timestamp()
    assert ("invoicesync_schedule_next_run_timestamp_seconds", (("account", "memtarget"),)) not in samples


def test_due_sources_and_targets_run_as_one_run_of_the_sources_which_delivers_to_every_target(
        scheduled: Dashboard, clock: FakeClock, memory_plugins: tuple[Plugins, MemorySource, MemoryTarget]) -> None:
    scheduler = scheduler_of(scheduled)
    scheduled.post("/sync/schedule", {"account": "memory", "schedule": "1h"})
    scheduled.post("/sync/schedule", {"account": "memtarget", "schedule": "15m"})
    job = finish(scheduler.tick())
    assert job.accounts == ("memory",) and job.scheduled_accounts == ("memory", "memtarget")
    assert memory_plugins[2].writes == 25
    records = scheduled.workspace.state.schedules()
    assert records["memory"].last_started_at == records["memtarget"].last_started_at == START
    clock.advance(minutes=15)
    job = finish(scheduler.tick())
    assert job.accounts == job.scheduled_accounts == ("memtarget",)


def test_the_state_keeps_schedules_and_last_runs_and_forgets_them_with_the_account(
        open_store: Callable[..., Any]) -> None:
    store = open_store()
    store.set_schedule("a", "every 15m")
    store.record_scheduled_run("a", START, START + timedelta(minutes=2), {"result": "ok", "exit_code": 0})
    store.record_scheduled_run("a", None, START + timedelta(minutes=20), {"result": "busy", "exit_code": 75})
    store.record_scheduled_run("b", None, START, {"result": "busy", "exit_code": 75})
    store.close()
    store = open_store()  # as the server's next start reads it
    a, b = store.schedules()["a"], store.schedules()["b"]
    assert (a.spec, a.last_started_at, a.last_finished_at) == ("every 15m", START, START + timedelta(minutes=20))
    assert a.last_result == {"result": "busy", "exit_code": 75}  # the busy attempt left the last run alone
    assert (b.spec, b.last_started_at) == (None, None)
    store.set_schedule("a", None)
    assert store.schedules()["a"].spec is None and store.schedules()["a"].last_started_at == START
    store.delete_account("a")
    assert list(store.schedules()) == ["b"]


def test_a_run_that_fails_counts_as_the_run_and_waits_for_the_next_slot(
        scheduled: Dashboard, clock: FakeClock, memory_plugins: tuple[Plugins, MemorySource, MemoryTarget]) -> None:
    scheduler = scheduler_of(scheduled)
    memory_plugins[2].fail_ids.update({"m1"})
    scheduled.post("/sync/schedule", {"account": "memory", "schedule": "15m"})
    job = finish(scheduler.tick())
    assert job.report is not None and job.report.exit_code == 1
    record = scheduled.workspace.state.schedules()["memory"]
    assert record.last_started_at == START and record.last_result == {"result": "partial", "exit_code": 1,
                                                                      "message": None}
    clock.advance(minutes=5)
    assert scheduler.tick() is None  # not hammering a failing service: the schedule decides, not a retry
    assert ">partial<" in row_of(scheduled.client.get("/sync").text, "memory")
