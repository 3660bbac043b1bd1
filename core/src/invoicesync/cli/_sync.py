"""``sync``: import from every source, export to every target, print a summary, exit with a code."""

from __future__ import annotations

import gc
import math
import signal
import sys
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import click

from ..errors import InvoiceSyncError
from ..pipeline import EXIT_FATAL, RunControl, SyncReport, run_sync
from ..pipeline._control import describe, stop_on_signals
from ..secrets import redact
from ..state import PersistentFailure
from ..workspace import Workspace
from . import collect_young_less_often
from ._common import State, handle_errors, json_option, pass_state, print_json
from ._documents import failing_text

if TYPE_CHECKING:
    from rich.progress import Progress

def quiet_collector() -> None:
    """A sync is one process that ends with the run: what start-up built (modules, plugins, models)
    lives until exit, so the cyclic collector is told not to walk it again and again (``freeze``),
    and it collects young objects less often while each request allocates and frees thousands
    (set already before this command's imports, by ``collect_young_less_often``). Together ~0.07
    CPU s of a 500-document sync (half the collector's time); memory stays bounded."""
    gc.freeze()
    collect_young_less_often()


@click.command()
@click.option("--account", "accounts", multiple=True, help="Only this account (repeatable).")
@click.option("--dry-run", is_flag=True, help="Show what would be written where; write nothing.")
@click.option("--full", is_flag=True, help="Ignore saved cursors and list everything again (nothing is duplicated).")
@click.option("--wait", type=click.FloatRange(min=0), is_flag=False, flag_value=math.inf, default=None,
              metavar="[SECONDS]",
              help="If another sync is running in this home, queue behind it (at most SECONDS) instead of "
                   "exiting with code 75.")
@click.option("--executor", type=click.Choice(["local", "celery"]), envvar="INVOICESYNC_EXECUTOR", default="local",
              show_default=True,
              help="celery: enqueue the work for `invoicesync worker` processes and wait for them "
                   "(needs a PostgreSQL state; env INVOICESYNC_EXECUTOR).")
@json_option
@pass_state
@handle_errors
def sync(state: State, accounts: tuple[str, ...], dry_run: bool, full: bool, wait: float | None,
         executor: str, as_json: bool) -> None:
    """Import new and changed documents, then export each one to every target, exactly once.

    \b
    Exit codes: 0 all well; 1 some documents or companies failed (see the summary);
    2 fatal (nothing could be done, or the run had to stop, e.g. disk full);
    75 another sync is running in this home; 130/143 stopped safely by Ctrl-C/SIGTERM.
    """
    control = RunControl()
    # From the start: a Ctrl-C while the home opens or the lock is awaited stops just as safely.
    with stop_on_signals(control):
        try:
            workspace = state.workspace()
            progress = progress_bars() if not as_json and sys.stderr.isatty() else None
            from . import one_command_process

            if one_command_process:
                quiet_collector()
            if executor == "celery":
                report = _celery(workspace, accounts, dry_run=dry_run, full=full, control=control)
            else:
                with progress if progress is not None else nullcontext():
                    report = run_sync(workspace, accounts=accounts, dry_run=dry_run, full=full, progress=progress,
                                      wait=None if wait is not None and math.isinf(wait) else (wait or 0.0),
                                      control=control)
        except InvoiceSyncError:
            raise  # handle_errors prints it
        except Exception as exc:  # noqa: BLE001 - e.g. a home whose disk is full: one line, no traceback
            click.secho(f"Error: {describe(exc)}", fg="red", err=True)
            sys.exit(EXIT_FATAL)
    failing = [] if report.busy else _still_failing(workspace, report)
    if as_json:
        print_json({**report.as_dict(), "failing": [_failing_dict(f) for f in failing]})
    elif not report.busy:
        print_summary(report, failing)
    if report.busy:
        click.secho(f"Error: {redact(report.busy)}", fg="red", err=True)
    if report.interrupted is not None:
        name = signal.Signals(report.interrupted).name
        click.echo(f"Interrupted by {name}: stopped safely; the next run picks up where this one stopped.",
                   err=True)
    # The run's contexts are closed; the workspace closes with click's context, before run() ends the
    # process, which then needs no teardown of what the run built (run() checks the rest). Not after a
    # Celery run: its broker and result connections say goodbye in the usual teardown.
    from . import mark_ended_cleanly, one_command_process

    if one_command_process and executor == "local":
        mark_ended_cleanly()
    sys.exit(report.exit_code)


def progress_bars() -> Progress:
    """rich's bars on the terminal; rich is imported only then (a sync run by cron, a script or
    ``--json`` shows none, and importing rich is a tenth of a CPU second of its start)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=Console(stderr=True), transient=False)


def _celery(workspace: Workspace, accounts: tuple[str, ...], *, dry_run: bool, full: bool,
            control: RunControl) -> SyncReport:
    if dry_run:
        raise InvoiceSyncError("--dry-run runs here, not on the workers: leave out --executor celery")
    try:
        from ..distributed import run_celery_sync
    except ImportError:
        raise InvoiceSyncError("the Celery executor needs celery: pip install 'invoicesync[celery]'") from None
    return run_celery_sync(workspace, accounts=accounts, full=full, control=control)


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
    if report.interrupted is not None:
        title = "Sync interrupted"
    elif report.fatal and not report.dry_run:
        title = "Sync stopped"
    echo(title)
    imported = report.imported
    echo(f"  imported: {imported['new']} new, {imported['updated']} updated, {imported['unchanged']} unchanged, "
         f"{imported['deleted']} deleted, {imported['failed']} failed")
    for target, counts in sorted(report.exported.items()):
        parts = [f"{counts[s]} {s}" for s in ("delivered", "unchanged", "deleted", "skipped", "planned", "failed")
                 if counts[s]]
        if counts["elsewhere"]:
            parts.append(f"{counts['elsewhere']} in progress elsewhere")
        echo(f"  → {target}: {', '.join(parts) or 'nothing to do'}")
        for reason, count in report.skipped_reasons.get(target, {}).items():
            echo(f"      skipped {count}: {reason}")
    writes = [p for p in report.planned if not p.get("deletion")]
    if writes:
        echo("  would write:")
        for plan in writes[:50]:
            echo(f"    {plan['target']}: {plan['path'] or plan['message']}")
        if len(writes) > 50:
            echo(f"    … and {len(writes) - 50} more (use --json for all)")
    # A deletion's plan says what would happen to the files (move, trash, delete), never "write".
    if deletions := [p for p in report.planned if p.get("deletion")]:
        echo("  deleted at the source:")
        for plan in deletions[:50]:
            echo(f"    {plan['target']}: {plan['message'] or plan['path']}")
        if len(deletions) > 50:
            echo(f"    … and {len(deletions) - 50} more (use --json for all)")
    if report.problems:
        echo(f"  problems ({report.problem_count}):")
        for problem in report.problems[:30]:
            doc = f" {problem.document}" if problem.document else ""
            echo(f"    {problem.where}{doc}: {problem.message}")
        if report.problem_count > len(report.problems):
            echo(f"    … and {report.problem_count - 30} more (`invoicesync documents --status failed`; "
                 f"--json lists the first {len(report.problems)})")
        elif len(report.problems) > 30:
            echo(f"    … and {len(report.problems) - 30} more (use --json for all)")
    if failing:
        click.secho(f"  still failing, run after run ({len(failing)}):", fg="red")
        for failure in failing[:30]:
            echo(f"    {failure.where} {failure.document}: {failing_text(failure.since)}: {failure.message}")
        if len(failing) > 30:
            echo(f"    … and {len(failing) - 30} more (`invoicesync documents --status failed`)")
    for message in report.fatal:
        click.secho(f"  fatal: {message}", fg="red")
