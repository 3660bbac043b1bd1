"""A task's part of the report, as JSON, and the coordinator's sum of the parts: one ``SyncReport``,
as a local run would have made it (the same summary, ``--json`` and exit code)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..pipeline import Problem, SyncReport


def report_part(report: SyncReport) -> dict[str, Any]:
    return {
        "imported_by_account": {name: dict(counts) for name, counts in report.imported_by_account.items()},
        "exported": {target: dict(counts) for target, counts in report.exported.items()},
        "skipped_reasons": {target: dict(counts) for target, counts in report.skipped_reasons.items()},
        "problems": [p.as_dict() for p in report.problems],
        "fatal": list(report.fatal),
    }


def add_part(report: SyncReport, part: dict[str, Any]) -> None:
    """Add a task's ``report_part`` to the run's report."""
    for account, counts in part.get("imported_by_account", {}).items():
        report.imported.update(counts)
        report.imported_by_account.setdefault(account, Counter()).update(counts)
    for target, counts in part.get("exported", {}).items():
        report.exported.setdefault(target, Counter()).update(counts)
    for target, counts in part.get("skipped_reasons", {}).items():
        report.skipped_reasons.setdefault(target, Counter()).update(counts)
    report.problems.extend(Problem(p["where"], p["document"], p["message"]) for p in part.get("problems", []))
    report.fatal.extend(message for message in part.get("fatal", []) if message not in report.fatal)
