""""Sync now" from the dashboard: ``run_sync`` in a background thread, its progress for the live view.

One job at a time per server; ``run_sync`` takes the home's runner lock, so a CLI sync (or a
timer's) running at the same moment makes the job end as *busy*, exactly as a second CLI would.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..pipeline import RunControl, SyncReport, run_sync
from ..workspace import Workspace


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
    #: Narrows a source to some of its companies (a webhook's sync); empty: every company.
    companies: dict[str, tuple[str, ...]] = field(default_factory=dict)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    progress: WebProgress = field(default_factory=WebProgress)
    control: RunControl = field(default_factory=RunControl)
    report: SyncReport | None = None
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def state(self) -> dict[str, Any]:
        """What the live view shows: progress while it runs, the summary when done."""
        summary = self.report.as_dict() if self.report else None
        return {"accounts": list(self.accounts), "started_at": self.started_at.isoformat(timespec="seconds"),
                "running": not self.done.is_set(), "tasks": self.progress.snapshot(), "summary": summary,
                "error": self.error}


class SyncJobs:
    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.current: SyncJob | None = None
        self._lock = threading.Lock()

    def start(self, accounts: Sequence[str] = ()) -> SyncJob:
        """Start a sync of ``accounts`` (all when empty); if one is already running, that one."""
        with self._lock:
            if self.current is not None and not self.current.done.is_set():
                return self.current
            job = SyncJob(tuple(accounts))
            self.current = job
        threading.Thread(target=self._run, args=(job,), name="invoicesync-web-sync", daemon=True).start()
        return job

    def try_start(self, accounts: Sequence[str], companies: dict[str, tuple[str, ...]]) -> SyncJob | None:
        """Start a sync of ``companies`` of ``accounts`` (a webhook's); ``None`` while another job runs,
        so the caller can come back for it instead of being handed a run that may not cover them."""
        with self._lock:
            if self.current is not None and not self.current.done.is_set():
                return None
            job = SyncJob(tuple(accounts), dict(companies))
            self.current = job
        threading.Thread(target=self._run, args=(job,), name="invoicesync-web-sync", daemon=True).start()
        return job

    def _run(self, job: SyncJob) -> None:
        try:
            job.report = run_sync(self.workspace, accounts=job.accounts, progress=job.progress, control=job.control,
                                  companies=job.companies or None)
        except Exception as exc:  # noqa: BLE001 - run_sync reports its own errors; this is a last guard
            job.error = f"{type(exc).__name__}: the sync stopped unexpectedly"
        finally:
            job.done.set()

    def stop(self) -> None:
        """Ask a running job to stop at its next safe point (server shutdown)."""
        job = self.current
        if job is not None and not job.done.is_set():
            job.control.interrupt(15)
            job.done.wait(30)
