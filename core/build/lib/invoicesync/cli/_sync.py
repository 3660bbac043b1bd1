"""``sync``: import from every source, export to every target, print a summary, exit with a code."""

from __future__ import annotations

import sys
from contextlib import nullcontext

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..pipeline import SyncReport, run_sync
from ._common import State, handle_errors, json_option, pass_state, print_json


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
    if as_json:
        print_json(report.as_dict())
    else:
        print_summary(report)
    sys.exit(report.exit_code)


def print_summary(report: SyncReport) -> None:
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
    for message in report.fatal:
        click.secho(f"  fatal: {message}", fg="red")
