"""What a sync did, for the summary, ``--json`` and the exit code."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..secrets import redact

EXIT_OK = 0
EXIT_PARTIAL = 1  #: the run finished, but some documents or companies failed
EXIT_FATAL = 2  #: nothing could be done (bad config, plugin missing), or the run had to stop (disk full)
EXIT_BUSY = 75  #: another sync holds this home's runner lock (EX_TEMPFAIL: try again later)
EXIT_INTERRUPTED = 130  #: stopped safely on SIGINT (128 + signal number; SIGTERM gives 143)
EXIT_TERMINATED = 143
#: Problems kept in the report, the first ones of the run. Every failure is in the state as well
#: (the ledger's failed deliveries, the failed fetches: ``invoicesync documents --status failed``),
#: so a run where thousands of documents fail keeps counting them without holding each in memory.
PROBLEMS_LISTED = 1000


@dataclass
class Problem:
    where: str  #: account (and company) or target
    document: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"where": self.where, "document": self.document, "message": self.message}


@dataclass
class SyncReport:
    dry_run: bool = False
    imported: Counter[str] = field(default_factory=Counter)  # new / updated / unchanged / deleted / failed
    imported_by_account: dict[str, Counter[str]] = field(default_factory=dict)
    exported: dict[str, Counter[str]] = field(default_factory=dict)  # target -> status counts
    skipped_reasons: dict[str, Counter[str]] = field(default_factory=dict)
    planned: list[dict[str, Any]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    #: Problems past ``PROBLEMS_LISTED``: counted (per account, as ``where`` starts), not listed.
    unlisted_problems: Counter[str] = field(default_factory=Counter)
    fatal: list[str] = field(default_factory=list)
    #: set when another runner held the home's lock: the run did nothing
    busy: str | None = None
    #: the signal that stopped the run at a safe point
    interrupted: int | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count_import(self, account: str, outcome: str) -> None:
        with self._lock:
            self.imported[outcome] += 1
            self.imported_by_account.setdefault(account, Counter())[outcome] += 1

    def account_result(self, account: str) -> dict[str, Any]:
        """What ``accounts`` shows as the last sync's result for one account."""
        with self._lock:
            problems = sum(1 for p in self.problems if p.where.split("/")[0] == account) \
                + self.unlisted_problems[account]
            counts = dict(self.imported_by_account.get(account) or self.exported.get(account) or {})
        return {"result": "ok" if not problems else "partial", "problems": problems, "counts": counts}

    def count_export(self, target: str, status: str, *, reason: str | None = None) -> None:
        with self._lock:
            self.exported.setdefault(target, Counter())[status] += 1
            if status == "skipped" and reason:
                self.skipped_reasons.setdefault(target, Counter())[reason] += 1

    def problem(self, where: str, document: str | None, message: str) -> None:
        with self._lock:
            if len(self.problems) < PROBLEMS_LISTED:
                self.problems.append(Problem(where, document, redact(message)))
            else:
                self.unlisted_problems[where.split("/")[0]] += 1

    @property
    def problem_count(self) -> int:
        """Every problem of the run, listed or not."""
        return len(self.problems) + sum(self.unlisted_problems.values())

    def plan(self, target: str, document: str, path: str | None, message: str | None, *,
             deletion: bool = False) -> None:
        """A dry run's planned delivery; ``deletion``: what the target would do to a document
        deleted at the source (move or delete), not a write."""
        with self._lock:
            self.planned.append({"target": target, "document": document, "path": path, "message": message,
                                 "deletion": deletion})

    @property
    def failed(self) -> int:
        return self.imported["failed"] + sum(c["failed"] for c in self.exported.values())

    @property
    def exit_code(self) -> int:
        if self.interrupted is not None:
            return 128 + self.interrupted
        if self.busy:
            return EXIT_BUSY
        if self.fatal:
            return EXIT_FATAL
        if self.failed or self.problems:
            return EXIT_PARTIAL
        return EXIT_OK

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "exit_code": self.exit_code,
            "imported": dict(self.imported),
            "exported": {t: dict(c) for t, c in self.exported.items()},
            "skipped_reasons": {t: dict(c) for t, c in self.skipped_reasons.items()},
            "planned": self.planned,
            "problems": [p.as_dict() for p in self.problems],
            "problems_not_listed": sum(self.unlisted_problems.values()),
            "fatal": self.fatal,
            "busy": self.busy,
            "interrupted": self.interrupted,
        }


class Progress(Protocol):
    """Where the pipeline reports progress (``rich.progress.Progress`` fits this)."""

    def add_task(self, description: str, *, total: float | None = ...) -> Any: ...

    def update(self, task_id: Any, *, total: float | None = ..., advance: float | None = ...) -> None: ...


class NoProgress:
    def add_task(self, description: str, *, total: float | None = None) -> int:
        return 0

    def update(self, task_id: Any, *, total: float | None = None, advance: float | None = None) -> None:
        pass
