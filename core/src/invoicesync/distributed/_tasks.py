"""What a worker does with a task: import one chunk of one (account, company), or push one batch of
documents to one target. Both reuse the local pipeline's stages, so a document is fetched, stored,
claimed and pushed exactly as ``sync`` would.

Tasks are idempotent: a redelivered one (its worker died or lost the broker before the ack) runs
again and finds what the first copy settled — the library says *unchanged*, the ledger *delivered*,
the per-(document, target) claims keep two copies from pushing at once, and the import lease keeps
two from listing one company at once. Each task writes its part of the report into the state, where
the coordinator takes it; the first answer of a task wins.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..context import Context
from ..models import Account, AccountDirection, Company
from ..pipeline import NoProgress, RunControl, SyncReport
from ..pipeline._control import describe
from ..pipeline._export import CLAIM_LEASE, TargetWorkers
from ..pipeline._import import ImportStage
from ..workspace import Workspace
from ._leases import LeaseBusy, TaskLeases
from ._settings import CelerySettings
from ._wire import report_part

log = logging.getLogger("invoicesync.worker")


class ChunkControl(RunControl):
    """A run control that also stops at the next safe point once the chunk's time is up — but only
    after the import saved a cursor in this chunk, so that every chunk moves the company on (a
    listing that reaches no checkpoint in time goes on until it does, or to its end)."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self._deadline = time.monotonic() + seconds
        self.progressed = False  #: a cursor was saved in this chunk
        self.cut = False  #: the chunk stopped the import before the listing's end

    @property
    def stopping(self) -> bool:
        if super().stopping:
            return True
        if self.progressed and time.monotonic() >= self._deadline:
            self.cut = True
        return self.cut


class _ChunkedImport(ImportStage):
    """The import stage, telling its chunk control when a cursor is saved."""

    def __init__(self, *args: Any, chunk: ChunkControl, **kwargs: Any) -> None:
        # The coordinator records each account's result once the run is over: a task's own record
        # (one company's counts) would be overwritten, and cost an UPDATE of the account per task.
        super().__init__(*args, control=chunk, record_result=False, **kwargs)
        self.chunk = chunk

    def _list_companies(self, account: Account, ctx: Context, pool: ThreadPoolExecutor, concurrency: int) -> None:
        # A task lists one company: on the task's own thread, not on a pool started for it (which
        # cost a thread per task). `_company_guarded` catches what a listing raises, as on a pool.
        for company in account.companies:
            self._company_guarded(account, company, ctx, pool, concurrency)

    def _save_cursor(self, account: Account, company: Company, cursor: str, where: str) -> None:
        super()._save_cursor(account, company, cursor, where)
        self.chunk.progressed = True


@dataclass
class WorkerRuntime:
    """What a worker process opens once and shares between its task threads."""

    workspace: Workspace
    settings: CelerySettings
    leases: TaskLeases


def task_account(workspace: Workspace, name: str) -> Account:
    """``workspace.account(name)`` without reading every account of the state, as each task would:
    the config's account of that name (which wins), else the state's row."""
    for account in workspace.config.accounts(workspace.plugins):
        if account.name == name:
            return account
    return workspace.state.get_account(name) or workspace.account(name)  # (the latter raises the usual error)


def import_chunk(runtime: WorkerRuntime, account_name: str, company_id: str, full: bool) -> dict[str, Any]:
    """Import (account, company) from its saved cursor for at most ``chunk_seconds``. The answer:
    the report part, the ids of documents that are new or changed (for the export tasks) and
    ``more`` when the chunk ran out of time after moving the cursor (the coordinator sends the next)."""
    workspace = runtime.workspace
    report = SyncReport()
    control = ChunkControl(runtime.settings.chunk_seconds)
    changed: list[str] = []
    more = False
    where = f"{account_name}/{company_id}"
    try:
        account = task_account(workspace, account_name)
        company = next((c for c in account.companies if c.id == company_id), None)
        if company is None or account.direction is not AccountDirection.IMPORT:
            report.problem(where, None, "no longer a chosen company of this source; left out")
            return _answer(report, changed, more, where=[account_name, company_id])
        with runtime.leases.hold(company=where, wait=runtime.settings.lease_wait):
            control = ChunkControl(runtime.settings.chunk_seconds)  # the chunk's time starts with the lease
            ctx = workspace.context(account)
            try:
                stage = _ChunkedImport(workspace.plugins, workspace.state, report, NoProgress(), dry_run=False,
                                       full=full, deliver=lambda document: changed.append(document.id),
                                       chunk=control)
                stage.run(account.model_copy(update={"companies": [company]}), ctx)
            finally:
                ctx.close()
            more = control.cut and control.error is None and control.signal is None
    except LeaseBusy as exc:
        report.problem(where, None, str(exc))
    except Exception as exc:  # noqa: BLE001 - the task answers; the coordinator must never wait forever
        report.problem(where, None, f"import task failed: {describe(exc)}")
    if control.error:
        report.fatal.append(control.error)
    return _answer(report, changed, more, where=[account_name, company_id])


def export_batch(runtime: WorkerRuntime, target: str, document_ids: list[str]) -> dict[str, Any]:
    """Push the current version of each of ``document_ids`` to ``target``, under its claims."""
    workspace = runtime.workspace
    report = SyncReport()
    control = RunControl()
    try:
        account = task_account(workspace, target)
        with runtime.leases.hold(wait=runtime.settings.lease_wait):
            ctx = workspace.context(account)
            done = threading.Event()
            renewer = threading.Thread(target=_renew, args=(workspace, control, done), daemon=True)
            renewer.start()
            try:
                workers = TargetWorkers(account, ctx, workspace.plugins, workspace.state, report, NoProgress(),
                                        dry_run=False, control=control, options=workspace.export_options(account))
                try:
                    _wait_for_claims(workspace, target, document_ids, runtime.settings.lease_wait)
                    # One read for the batch: each push reads its document again under its claim.
                    for document in workspace.state.get_documents(document_ids):
                        workers.feed(document)
                finally:
                    workers.close()
            finally:
                done.set()
                ctx.close()
    except LeaseBusy as exc:
        report.problem(target, None, str(exc))
    except Exception as exc:  # noqa: BLE001 - the task answers; the coordinator must never wait forever
        report.problem(target, None, f"export task failed: {describe(exc)}")
    if control.error:
        report.fatal.append(control.error)
    return _answer(report, [], False, where=[target])


def _wait_for_claims(workspace: Workspace, target: str, document_ids: list[str], wait: float) -> None:
    """Let pushes of these documents that another task has under way finish first (a redelivered
    copy of this task, another coordinator's task): then the ledger shows them settled, where
    pushing at once would report them as in progress elsewhere."""
    deadline = time.monotonic() + wait
    while workspace.state.claimed_elsewhere(target, document_ids) and time.monotonic() < deadline:
        time.sleep(0.5)


def _answer(report: SyncReport, changed: list[str], more: bool, *, where: list[str]) -> dict[str, Any]:
    return {"report": report_part(report), "changed": changed, "more": more, "where": where}


def _renew(workspace: Workspace, control: RunControl, done: threading.Event) -> None:
    """Keep the task's claims alive while it pushes; a killed worker's claims expire with the lease
    (or are taken over at once on its own host, where its death can be seen)."""
    while not done.wait(CLAIM_LEASE / 6):
        try:
            workspace.state.renew_claims(control.owner, CLAIM_LEASE)
        except Exception as exc:  # noqa: BLE001 - the next renewal tries again well within the lease
            log.warning("could not renew the task's claims: %s", describe(exc))
