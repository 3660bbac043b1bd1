"""``sync``: import from every source, export to every target, print a summary, exit with a code."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..pipeline import SyncReport, run_sync
from ..state import PersistentFailure
from ..workspace import Workspace
from ._common import State, handle_errors, json_option, pass_state, print_json
from ._documents import failing_text


@click.command()
@click.option("--account", "accounts", multiple=True, help="Only this account (repeatable).")
@click.option("--dry-run", is_flag=True, help="Show what would be written where; write nothing.")
@click.option("--full", is_flag=True, help="Ignore saved cursors and list everything again (nothing is duplicated).")
@json_option
@pass_state
@handle_errors
def sync(state: State, accounts: tuple[str, ...], dry_run: bool, full: bool, as_json: bool) -> None:
    """Import new and changed documents, then export each one to every target, exactly once.

    Exit codes: 0 all well, 1 some documents or companies failed (see the summary), 2 fatal.
    """
    workspace = state.workspace()
    show_bars = not as_json and sys.stderr.isatty()
    progress = (Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                         console=Console(stderr=True), transient=False) if show_bars else None)
    with progress if progress is not None else nullcontext():
        report = run_sync(workspace, accounts=accounts, dry_run=dry_run, full=full, progress=progress)
    failing = _still_failing(workspace, report)
    if as_json:
        print_json({**report.as_dict(), "failing": [_failing_dict(f) for f in failing]})
    else:
        print_summary(report, failing)
    sys.exit(report.exit_code)


def _still_failing(workspace: Workspace, report: SyncReport) -> list[PersistentFailure]:
    """This run's failures that also failed in earlier runs: those need a person, not a retry."""
    if report.dry_run:
        return []
    now_failed = {(p.where.split("/")[0], p.document) for p in report.problems if p.document}
    return [f for f in workspace.state.persistent_failures()
            if (f.where.split("/")[0], f.document) in now_failed]


def _failing_dict(failure: PersistentFailure) -> dict[str, Any]:
    return {"where": failure.where, "document": failure.document, "message": failure.message,
            "since": failure.since.first_failed_at.isoformat(), "runs": failure.since.runs,
            "attempts": failure.since.attempts}


def print_summary(report: SyncReport, failing: list[PersistentFailure] | None = None) -> None:
    echo = click.echo
    title = "Dry run: nothing was written" if report.dry_run else "Sync finished"
    echo(title)
    imported = report.imported
    echo(f"  imported: {imported['new']} new, {imported['updated']} updated, {imported['unchanged']} unchanged, "
         f"{imported['deleted']} deleted, {imported['failed']} failed")
    for target, counts in sorted(report.exported.items()):
        parts = [f"{counts[s]} {s}" for s in ("delivered", "unchanged", "skipped", "planned", "failed") if counts[s]]
        echo(f"  → {target}: {', '.join(parts) or 'nothing to do'}")
        for reason, count in report.skipped_reasons.get(target, {}).items():
            echo(f"      skipped {count}: {reason}")
    if report.planned:
        echo("  would write:")
        for plan in report.planned[:50]:
            echo(f"    {plan['target']}: {plan['path'] or plan['message']}")
        if len(report.planned) > 50:
            echo(f"    … and {len(report.planned) - 50} more (use --json for all)")
    if report.problems:
        echo(f"  problems ({len(report.problems)}):")
        for problem in report.problems[:30]:
            doc = f" {problem.document}" if problem.document else ""
            echo(f"    {problem.where}{doc}: {problem.message}")
        if len(report.problems) > 30:
            echo(f"    … and {len(report.problems) - 30} more (use --json for all)")
    if failing:
        click.secho(f"  still failing, run after run ({len(failing)}):", fg="red")
        for failure in failing[:30]:
            echo(f"    {failure.where} {failure.document}: {failing_text(failure.since)}: {failure.message}")
        if len(failing) > 30:
            echo(f"    … and {len(failing) - 30} more (`invoicesync documents --status failed`)")
    for message in report.fatal:
        click.secho(f"  fatal: {message}", fg="red")
