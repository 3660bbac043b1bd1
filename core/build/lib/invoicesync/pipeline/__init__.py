"""The sync pipeline: import from every source into the library, export to every target, concurrently.

    list_documents ──▶ fetch pool ──▶ library (+cursor) ──▶ target queues ──▶ push workers ──▶ ledger

Listing, fetching and pushing overlap; every queue is bounded, so memory does not grow with the
number of documents, and file content only ever moves as streams through the blob store.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from ..context import PluginKind
from ..errors import InvoiceSyncError, PluginError
from ..models import Account, AccountDirection, Document
from ..secrets import redact
from ..workspace import Workspace
from ._export import TargetWorkers
from ._import import CursorTracker, ImportStage
from ._report import EXIT_FATAL, EXIT_OK, EXIT_PARTIAL, NoProgress, Problem, Progress, SyncReport

__all__ = [
    "EXIT_FATAL", "EXIT_OK", "EXIT_PARTIAL", "CursorTracker", "NoProgress", "Problem", "Progress",
    "SyncReport", "run_sync",
]


def run_sync(
    workspace: Workspace,
    *,
    accounts: Sequence[str] = (),
    dry_run: bool = False,
    full: bool = False,
    progress: Progress | None = None,
) -> SyncReport:
    """Import new and changed documents, then deliver every undelivered one to every target.

    ``accounts`` limits the run: named sources are imported (and exported to every target unless
    targets are named too); named targets receive their backlog. ``full`` ignores saved cursors
    (the library still deduplicates). ``dry_run`` writes nothing anywhere.
    """
    report = SyncReport(dry_run=dry_run)
    progress = progress or NoProgress()
    try:
        sources, targets = _select(workspace, accounts, report)
    except InvoiceSyncError as exc:
        report.fatal.append(redact(str(exc)))
        return report

    workers: list[TargetWorkers] = []
    contexts = []
    for account in targets:
        try:
            ctx = workspace.context(account, dry_run=dry_run)
            contexts.append(ctx)
            workers.append(TargetWorkers(account, ctx, workspace.plugins, workspace.state, report, progress,
                                         dry_run=dry_run))
        except InvoiceSyncError as exc:  # one misconfigured target must not stop the others
            report.problem(account.name, None, str(exc))
    if targets and not workers and not sources:
        report.fatal.append("no target could be started; see the problems above")

    def deliver(document: Document) -> None:
        for worker in workers:
            worker.offer(document)

    # The backlog (new targets, earlier failures) flows in beside the fresh imports.
    backlog = [threading.Thread(target=_feed_backlog, args=(workspace, w), daemon=True) for w in workers]
    for thread in backlog:
        thread.start()

    stage = ImportStage(workspace.plugins, workspace.state, report, progress, dry_run=dry_run, full=full,
                        deliver=deliver)
    for account in sources:
        try:
            ctx = workspace.context(account, dry_run=dry_run)
            contexts.append(ctx)
            stage.run(account, ctx)
        except InvoiceSyncError as exc:
            report.problem(account.name, None, str(exc))

    for thread in backlog:
        thread.join()
    for worker in workers:
        worker.close()
        if not dry_run:
            workspace.state.record_sync(worker.account.name, report.account_result(worker.account.name))
    for ctx in contexts:
        ctx.close()
    return report


def _select(workspace: Workspace, names: Sequence[str],
            report: SyncReport) -> tuple[list[Account], list[Account]]:
    """The accounts to run. One whose plugin is missing or broken is reported and left out."""
    everything = workspace.accounts()
    if not everything:
        raise InvoiceSyncError("no accounts to sync; add one with `invoicesync connect PLUGIN`")
    chosen = [workspace.account(n) for n in names] if names else everything
    if names and not any(a.direction is AccountDirection.EXPORT for a in chosen):
        chosen += [a for a in everything if a.direction is AccountDirection.EXPORT]
    usable = []
    for account in chosen:
        kind = PluginKind.SOURCE if account.direction is AccountDirection.IMPORT else PluginKind.TARGET
        try:
            workspace.plugins.get(account.plugin, kind)
        except PluginError as exc:
            report.problem(account.name, None, str(exc))
            continue
        usable.append(account)
    if not usable:
        raise InvoiceSyncError("none of the accounts can be synced; see `invoicesync plugins` for load failures")
    sources = [a for a in usable if a.direction is AccountDirection.IMPORT]
    targets = [a for a in usable if a.direction is AccountDirection.EXPORT]
    return sources, targets


def _feed_backlog(workspace: Workspace, worker: TargetWorkers) -> None:
    for document in workspace.state.undelivered(worker.account.name):
        worker.offer(document)
