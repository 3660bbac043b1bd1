"""The serve process's scheduler: runs each account's sync when its schedule says, one run at a time.

A due account is synced through ``SyncJobs`` (so the Sync page's live view shows it, and a running
"Sync now" makes it wait for the next tick), under the home's runner lock like every sync. When a CLI
or timer sync holds that lock, the scheduled run ends *busy* (exit 75, as a second CLI would) and is
tried again ``retry`` later; the account stays due until a run gets in, so it never runs twice at
once and never skips silently. Accounts due together run together, in one run: when sources are
due, a run of them (which, as ``sync SOURCE`` does, delivers every target's backlog, due targets
included); else a run of the due targets.

A schedule counts from the start of the account's last scheduled run (kept in the state). A server
that was down finds such an account overdue and runs it once on start-up, however many slots it
missed; an account never run on a schedule is due at once on an interval, at its next slot on a cron.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ..errors import InvoiceSyncError
from ..models import AccountDirection
from ..pipeline import EXIT_OK, EXIT_PARTIAL
from ..schedules import Schedule, from_text, to_text
from ..state import ScheduleRecord
from ..workspace import Workspace
from ._jobs import SyncJob, SyncJobs

log = logging.getLogger("invoicesync.server.scheduler")
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Planned:
    """One account's schedule, as the Sync page shows it."""

    account: str
    direction: AccountDirection
    schedule: Schedule | None
    #: ``config``: declared in invoicesync.toml (changed there); ``dashboard``: set on the Sync page
    source: str
    next_run: datetime | None
    record: ScheduleRecord | None

    @property
    def text(self) -> str:
        return self.schedule.describe() if self.schedule else ""


class Scheduler:
    def __init__(self, workspace: Workspace, jobs: SyncJobs, *, clock: Clock = utc_now,
                 retry: timedelta = timedelta(minutes=1), poll_seconds: float = 15.0) -> None:
        self.workspace = workspace
        self.jobs = jobs
        self.clock = clock
        self.retry = retry
        self.poll_seconds = poll_seconds
        self.since = clock()  #: never-run interval schedules count from the server's start
        self._retry_at: dict[str, datetime] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        jobs.listeners.append(self._finished)

    # -- what is scheduled ------------------------------------------------------------------------

    def plan(self) -> list[Planned]:
        records = self.workspace.state.schedules()
        declared = self.workspace.config.schedules()
        planned = []
        for account in self.workspace.accounts():
            record = records.get(account.name)
            if account.origin == "config":
                schedule, source = declared.get(account.name), "config"
            else:
                schedule, source = from_text(record.spec if record else None), "dashboard"
            next_run = None
            if schedule is not None:
                next_run = schedule.next_run(record.last_started_at if record else None, self.since)
                if account.name in self._retry_at:
                    next_run = max(next_run, self._retry_at[account.name])
            planned.append(Planned(account.name, account.direction, schedule, source, next_run, record))
        return planned

    def set_schedule(self, account: str, schedule: Schedule | None) -> None:
        """A schedule set on the Sync page (``None``: none). Declared accounts keep theirs in the file."""
        found = self.workspace.account(account)
        if found.origin == "config":
            where = self.workspace.config.path or "invoicesync.toml"
            raise InvoiceSyncError(f"{account} takes its schedule from {where}; change `every` or `cron` there")
        self.workspace.state.set_schedule(account, to_text(schedule))
        self._retry_at.pop(account, None)

    # -- running ----------------------------------------------------------------------------------

    def tick(self) -> SyncJob | None:
        """Start one run of every due account, unless a sync is already running here; the job, if any."""
        now = self.clock()
        due = [p for p in self.plan() if p.next_run is not None and p.next_run <= now]
        if not due or self.jobs.running():
            return None
        run = [p.account for p in due if p.direction is AccountDirection.IMPORT] or [p.account for p in due]
        job = self.jobs.start_if_idle(run, trigger="schedule", scheduled_at=now,
                                      scheduled_accounts=[p.account for p in due])
        if job is not None:
            log.info("scheduled sync of %s", ", ".join(p.account for p in due))
        return job

    def _finished(self, job: SyncJob) -> None:
        started = job.scheduled_at
        if job.trigger != "schedule" or started is None:
            return
        now, report = self.clock(), job.report
        result: dict[str, Any]
        ran: datetime | None = started
        if report is not None and (report.busy or report.interrupted is not None):
            # It did not run (another sync held the home), or not to the end (the server stopping): the
            # last run stays what it was, so the account stays due, tried again after ``retry`` (or
            # on the next start).
            ran = None
            result = {"result": "busy" if report.busy else "interrupted", "exit_code": report.exit_code,
                      "message": report.busy or "stopped before the end"}
            for account in job.scheduled_accounts:
                self._retry_at[account] = now + self.retry
        else:
            code = report.exit_code if report else None
            outcome = "ok" if code == EXIT_OK else "partial" if code == EXIT_PARTIAL else "failed"
            message = "; ".join(report.fatal) if report else job.error
            result = {"result": outcome, "exit_code": code, "message": message or None}
            for account in job.scheduled_accounts:
                self._retry_at.pop(account, None)
        for account in job.scheduled_accounts:
            self.workspace.state.record_scheduled_run(account, ran, now, result)

    def start(self) -> None:
        """Tick now (overdue accounts run on start-up), then every ``poll_seconds``, in a thread."""
        def loop() -> None:
            while True:
                try:
                    self.tick()
                except Exception:  # a bad tick (the state briefly away) must not end the schedule
                    log.warning("the scheduler could not check the schedules", exc_info=True)
                if self._stop.wait(self.poll_seconds):
                    return

        self._thread = threading.Thread(target=loop, name="invoicesync-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
