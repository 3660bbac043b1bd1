""""Sync now" and scheduled syncs: ``run_sync`` in a background thread, its progress for the live view.

One job at a time per server; ``run_sync`` takes the home's runner lock, so a CLI sync (or a
timer's) running at the same moment makes the job end as *busy*, exactly as a second CLI would.
Listeners (the scheduler, the metrics) hear of every finished job before it is marked done.

With the Celery executor (``INVOICESYNC_EXECUTOR=celery`` or ``executor = "celery"`` in ``[celery]``)
a job enqueues its work for the ``invoicesync worker`` processes and waits for their answers, as
``sync --executor celery`` does; a webhook's sync of some companies still runs here.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..logs import log_fields
from ..pipeline import RunControl, SyncReport, run_sync
from ..workspace import Workspace

log = logging.getLogger("invoicesync.server")
_job_ids = itertools.count(1)


@dataclass
class _Task:
    description: str
    total: float | None
    completed: float = 0.0


class WebProgress:
    """The pipeline's ``Progress``, kept for the page to read (thread-safe)."""

    def __init__(self) -> None:
        self._tasks: dict[int, _Task] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def add_task(self, description: str, *, total: float | None = None) -> int:
        with self._lock:
            task_id = next(self._ids)
            self._tasks[task_id] = _Task(description, total)
            return task_id

    def update(self, task_id: Any, *, total: float | None = None, advance: float | None = None) -> None:
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None:
                return
            if total is not None:
                task.total = total
            if advance:
                task.completed += advance

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{"description": t.description, "completed": t.completed, "total": t.total}
                    for t in self._tasks.values()]


@dataclass
class SyncJob:
    accounts: tuple[str, ...]
    #: ``manual`` (Sync now) or ``schedule``
    trigger: str = "manual"
    id: int = field(default_factory=lambda: next(_job_ids))
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    #: when the scheduler started it, on the scheduler's clock, and the due accounts it serves (a
    #: scheduled job only; a run of due sources also delivers to every target, due ones included)
    scheduled_at: datetime | None = None
    scheduled_accounts: tuple[str, ...] = ()
    #: Narrows a source to some of its companies (a webhook's sync); empty: every company.
    companies: dict[str, tuple[str, ...]] = field(default_factory=dict)
    progress: WebProgress = field(default_factory=WebProgress)
    control: RunControl = field(default_factory=RunControl)
    report: SyncReport | None = None
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def state(self) -> dict[str, Any]:
        """What the live view shows: progress while it runs, the summary when done."""
        summary = self.report.as_dict() if self.report else None
        return {"accounts": list(self.accounts), "trigger": self.trigger,
                "started_at": self.started_at.isoformat(timespec="seconds"),
                "running": not self.done.is_set(), "tasks": self.progress.snapshot(), "summary": summary,
                "error": self.error}


Listener = Callable[[SyncJob], None]


class SyncJobs:
    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.current: SyncJob | None = None
        self.listeners: list[Listener] = []
        self._lock = threading.Lock()

    def start(self, accounts: Sequence[str] = ()) -> SyncJob:
        """Start a sync of ``accounts`` (all when empty); if one is already running, that one."""
        job = self.start_if_idle(accounts)
        if job is None:
            assert self.current is not None  # running() said so, and it is never unset
            return self.current
        return job

    def start_if_idle(self, accounts: Sequence[str] = (), *, trigger: str = "manual",
                      scheduled_at: datetime | None = None, scheduled_accounts: Sequence[str] = (),
                      companies: Mapping[str, Sequence[str]] | None = None) -> SyncJob | None:
        """Start a sync of ``accounts`` unless one is running (then ``None``). ``companies`` narrows
        named sources to some of their companies (a webhook's sync)."""
        with self._lock:
            if self.running():
                return None
            job = SyncJob(tuple(accounts), trigger, scheduled_at=scheduled_at,
                          scheduled_accounts=tuple(scheduled_accounts),
                          companies={a: tuple(c) for a, c in (companies or {}).items()})
            self.current = job
        threading.Thread(target=self._run, args=(job,), name="invoicesync-web-sync", daemon=True).start()
        return job

    def running(self) -> bool:
        return self.current is not None and not self.current.done.is_set()

    def _run(self, job: SyncJob) -> None:
        try:
            with log_fields(run=job.id, trigger=job.trigger, account=",".join(job.accounts) or None):
                log.info("%s sync started", job.trigger)
                if self._on_workers(job):
                    from ..distributed import run_celery_sync  # needs celery: only when configured

                    job.report = run_celery_sync(self.workspace, accounts=job.accounts, control=job.control)
                else:
                    job.report = run_sync(self.workspace, accounts=job.accounts, progress=job.progress,
                                          control=job.control, companies=job.companies or None)
                log.info("%s sync finished: exit code %d", job.trigger, job.report.exit_code)
        except Exception as exc:  # run_sync reports its own errors; this is a last guard
            job.error = f"{type(exc).__name__}: the sync stopped unexpectedly"
            log.error("%s sync stopped unexpectedly", job.trigger, exc_info=True)
        finally:
            job.finished_at = datetime.now(UTC)
            for listener in self.listeners:
                try:
                    listener(job)
                except Exception:  # a listener (metrics, schedule) must not lose the job
                    log.warning("a job listener failed", exc_info=True)
            job.done.set()

    def _on_workers(self, job: SyncJob) -> bool:
        """Whether ``job`` goes to the Celery workers: the executor is celery, and the job syncs
        whole sources (the workers import every company of a source; a webhook names a few)."""
        table = self.workspace.config.data.get("celery")
        chosen = os.environ.get("INVOICESYNC_EXECUTOR") or (table.get("executor") if isinstance(table, dict) else None)
        return chosen == "celery" and not job.companies

    def stop(self) -> None:
        """Ask a running job to stop at its next safe point (server shutdown)."""
        job = self.current
        if job is not None and not job.done.is_set():
            job.control.interrupt(15)
            job.done.wait(30)
