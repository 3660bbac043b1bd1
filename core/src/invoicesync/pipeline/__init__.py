"""The sync pipeline: import from every source into the library, export to every target, concurrently.

    list_documents ──▶ fetch pool ──▶ library (+cursor) ──▶ target queues ──▶ push workers ──▶ ledger

Listing, fetching and pushing overlap; every queue is bounded, so memory does not grow with the
number of documents, and file content only ever moves as streams through the blob store.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime

from ..context import Context, PluginKind
from ..errors import InvoiceSyncError, PluginError
from ..models import Account, AccountDirection, Document
from ..secrets import redact
from ..state import RunnerBusy, RunnerInfo
from ..workspace import Workspace
from ._control import RunControl, describe, stop_on_signals
from ._export import CLAIM_LEASE, TargetWorkers
from ._import import CursorTracker, ImportStage
from ._report import (
    EXIT_BUSY,
    EXIT_FATAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_TERMINATED,
    NoProgress,
    Problem,
    Progress,
    SyncReport,
)

__all__ = [
    "EXIT_BUSY", "EXIT_FATAL", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_PARTIAL", "EXIT_TERMINATED",
    "CursorTracker", "NoProgress", "Problem", "Progress", "RunControl", "SyncReport", "run_sync",
]

log = logging.getLogger("invoicesync.sync")


def run_sync(
    workspace: Workspace,
    *,
    accounts: Sequence[str] = (),
    dry_run: bool = False,
    full: bool = False,
    progress: Progress | None = None,
    wait: float | None = 0.0,
    control: RunControl | None = None,
    companies: Mapping[str, Collection[str]] | None = None,
) -> SyncReport:
    """Import new and changed documents, then deliver every undelivered one to every target.

    ``accounts`` limits the run: named sources are imported (and exported to every target unless
    targets are named too); named targets receive their backlog. ``full`` ignores saved cursors
    (the library still deduplicates). ``dry_run`` writes nothing anywhere. ``companies`` narrows a
    named source to some of its companies (a webhook named one); the targets still get their backlog.

    One run per home: if another holds the home's runner lock, this one waits up to ``wait``
    seconds (``None``: as long as it takes) and otherwise does nothing (``report.busy``). Called
    from the main thread, SIGINT and SIGTERM stop it at the next safe point (``report.interrupted``).
    """
    report = SyncReport(dry_run=dry_run)
    started = datetime.now(UTC)
    control = control or RunControl()
    with stop_on_signals(control):
        try:
            if control.stopping:  # stopped before it began (e.g. while the CLI was opening the home)
                raise RunnerBusy(None, waited=False)
            me = RunnerInfo.current(token=control.owner)  # claims of other runs are stale while it holds
            with workspace.state.runner_lock(me, wait=wait, should_stop=lambda: control.stopping):
                _run(workspace, report, progress or NoProgress(), control, accounts=accounts, dry_run=dry_run,
                     full=full, companies=companies or {})
        except RunnerBusy as exc:
            if control.signal is None:
                report.busy = str(exc)
        except Exception as exc:  # never a traceback: one line and a non-zero exit
            log.debug("sync stopped", exc_info=True)
            control.abort(describe(exc))
    report.interrupted = control.signal
    if control.error and control.error not in report.fatal:
        report.fatal.append(control.error)
    if not report.busy and not dry_run:
        _record_run(workspace, started, accounts, report)
    return report


def _record_run(workspace: Workspace, started: datetime, accounts: Sequence[str], report: SyncReport) -> None:
    """Keep the run for History (CLI and dashboard alike); a run that did nothing (busy, dry) is not one."""
    try:
        workspace.state.record_run(started, datetime.now(UTC), accounts, report.exit_code, report.as_dict())
    except Exception as exc:  # noqa: BLE001 - only the History page misses it; the run's outcome stands
        log.warning("could not record the run: %s", describe(exc))


def _run(workspace: Workspace, report: SyncReport, progress: Progress, control: RunControl, *,
         accounts: Sequence[str], dry_run: bool, full: bool,
         companies: Mapping[str, Collection[str]]) -> None:
    # Under the runner lock no blob writer is live: every temp file is a killed run's leftover.
    leftovers = workspace.blobs.clean_tmp()
    if leftovers:
        log.info("removed %d half-written blob(s) a stopped run left behind", leftovers)
    try:
        sources, targets = _select(workspace, accounts, report)
        sources = [_narrowed(a, companies.get(a.name)) for a in sources]
    except InvoiceSyncError as exc:
        report.fatal.append(redact(str(exc)))
        return

    workers: list[TargetWorkers] = []
    contexts: list[Context] = []
    renewing = threading.Event()
    imported = threading.Event()  # every source is done: what they left to the backlog can be read
    renewer = threading.Thread(target=_renew_claims, args=(workspace, control, renewing), daemon=True)
    if not dry_run:
        renewer.start()
    try:
        for account in targets:
            try:
                ctx = workspace.context(account, dry_run=dry_run)
                contexts.append(ctx)
                workers.append(TargetWorkers(account, ctx, workspace.plugins, workspace.state, report, progress,
                                             dry_run=dry_run, control=control,
                                             options=workspace.export_options(account)))
            except Exception as exc:  # noqa: BLE001 - one misconfigured target must not stop the others
                report.problem(account.name, None, describe(exc))
        if targets and not workers and not sources:
            report.fatal.append("no target could be started; see the problems above")

        def deliver(document: Document) -> None:
            for worker in workers:
                worker.offer(document)

        # The backlog (new targets, earlier failures) flows in beside the fresh imports, and once
        # they are done, whatever the imports left to it because a target's queue was full.
        backlog = [threading.Thread(target=_feed_backlog, args=(workspace, w, control, imported), daemon=True)
                   for w in workers]
        for thread in backlog:
            thread.start()

        stage = ImportStage(workspace.plugins, workspace.state, report, progress, dry_run=dry_run, full=full,
                            deliver=deliver, control=control)
        for account in sources:
            if control.stopping:
                break
            try:
                ctx = workspace.context(account, dry_run=dry_run)
                contexts.append(ctx)
                stage.run(account, ctx)
            except InvoiceSyncError as exc:
                report.problem(account.name, None, str(exc))
            except Exception as exc:  # noqa: BLE001 - end the run cleanly: the workers still close
                control.abort(f"import from {account.name} stopped: {describe(exc)}")

        imported.set()
        for thread in backlog:
            thread.join()
        for worker in workers:
            worker.close()
            if not dry_run:
                try:
                    workspace.state.record_sync(worker.account.name, report.account_result(worker.account.name))
                except Exception as exc:  # noqa: BLE001 - only the `accounts` overview misses it
                    report.problem(worker.account.name, None, f"could not record the sync result: {describe(exc)}")
                    control.check_fatal(exc)
    finally:
        imported.set()
        renewing.set()
        for ctx in contexts:
            try:
                ctx.close()
            except Exception as exc:  # noqa: BLE001 - closing must not hide the run's outcome
                log.warning("closing %s: %s", ctx.account.name, describe(exc))


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


def _narrowed(account: Account, companies: Collection[str] | None) -> Account:
    """``account`` with only ``companies`` (by id) left to import; all of them when ``None``."""
    if companies is None:
        return account
    return account.model_copy(update={"companies": [c for c in account.companies if c.id in companies]})


def _feed_backlog(workspace: Workspace, worker: TargetWorkers, control: RunControl,
                  imported: threading.Event) -> None:
    try:
        _feed_undelivered(workspace, worker, control)
        imported.wait()
        while worker.take_spilled() and not control.stopping:
            _feed_undelivered(workspace, worker, control)
    except BaseException as exc:  # noqa: BLE001 - a feeder that dies must end the run, not hang it
        control.abort(f"reading the backlog of {worker.account.name} failed: {describe(exc)}")


def _feed_undelivered(workspace: Workspace, worker: TargetWorkers, control: RunControl) -> None:
    # Documents settled under other export options are offered again: a changed option is re-checked.
    for document in workspace.state.undelivered(worker.account.name, export_options=worker.requests.fingerprint):
        if control.stopping:
            return
        worker.feed(document)


def _renew_claims(workspace: Workspace, control: RunControl, done: threading.Event) -> None:
    """Keep this run's claims alive while it runs; a crashed run's claims expire with the lease."""
    while not done.wait(CLAIM_LEASE / 6):
        try:
            workspace.state.renew_claims(control.owner, CLAIM_LEASE)
        except Exception as exc:  # noqa: BLE001 - the next renewal tries again well within the lease
            log.warning("could not renew this run's claims: %s", describe(exc))
