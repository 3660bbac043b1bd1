"""``sync --executor celery``: enqueue the run's tasks, wait for their answers, report like ``sync``.

    import task per (account, company) ──answer: changed ids──▶ export tasks per (target, batch)
                 └─ chunk ran out of time ─▶ the next chunk of that company
    all imports answered ──▶ the targets' backlog (what they have not taken) ──▶ export tasks

The coordinator holds no lock: two coordinators (a cron run and a person) may enqueue at once.
Exactly once comes from the state — the import lease per (account, company), the claims per
(document, target) and the ledger, read again under each claim — not from who enqueued what.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import Celery

from ..errors import ConfigError, InvoiceSyncError
from ..models import Account
from ..pipeline import RunControl, SyncReport, _select
from ..pipeline._control import describe, stop_on_signals
from ..secrets import redact
from ..workspace import Workspace
from ._app import EXPORT_TASK, IMPORT_TASK, make_app
from ._settings import CelerySettings
from ._wire import add_part

log = logging.getLogger("invoicesync.sync")
POLL_SECONDS = 0.25
#: Seconds a changed document waits for more to fill its export task: a task per import answer (one
#: document, for a one-document company) cost a task's own CPU (its lease, account, context, push
#: threads, answer) per document, about as much as the push itself.
EXPORT_LINGER = 1.0
#: Answers nobody took (a coordinator that stopped early) are dropped after this long.
STALE_ANSWERS = timedelta(days=1)


def require_postgres(workspace: Workspace) -> None:
    from ..state._postgres import PostgresStore

    if not isinstance(workspace.state, PostgresStore):
        raise ConfigError("the Celery executor needs the state in PostgreSQL (state_url = \"postgresql://…\"), "
                          "shared by every worker; see docs/scale-out.md")


def run_celery_sync(workspace: Workspace, *, accounts: Sequence[str] = (), full: bool = False,
                    control: RunControl | None = None, settings: CelerySettings | None = None) -> SyncReport:
    """Like ``run_sync``, with the work done by ``invoicesync worker`` processes."""
    report = SyncReport()
    started = datetime.now(UTC)
    control = control or RunControl()
    with stop_on_signals(control):
        try:
            require_postgres(workspace)
            settings = settings or CelerySettings.from_config(workspace.config)
            _Run(workspace, settings, report, control).run(accounts, full)
        except InvoiceSyncError as exc:
            report.fatal.append(redact(str(exc)))
        except Exception as exc:  # never a traceback: one line and a non-zero exit
            log.debug("sync stopped", exc_info=True)
            report.fatal.append(describe(exc))
    report.interrupted = control.signal
    try:
        workspace.state.record_run(started, datetime.now(UTC), accounts, report.exit_code, report.as_dict())
    except Exception as exc:  # noqa: BLE001 - only the History page misses it
        log.warning("could not record the run: %s", describe(exc))
    return report


def interleaved(sources: Sequence[Account]) -> Iterator[tuple[str, str]]:
    """(account, company) pairs, one company of each account in turn: the workers take tasks in
    queue order, so tasks running at once use as many credentials as there are, rather than
    queueing on one account's in-flight cap while the other accounts' caps sit idle."""
    queues = [[(source.name, company.id) for company in source.companies] for source in sources]
    for turn in range(max((len(queue) for queue in queues), default=0)):
        for queue in queues:
            if turn < len(queue):
                yield queue[turn]


class _Run:
    def __init__(self, workspace: Workspace, settings: CelerySettings, report: SyncReport,
                 control: RunControl) -> None:
        self.workspace = workspace
        self.settings = settings
        self.report = report
        self.control = control
        self.id = uuid.uuid4().hex
        self.app: Celery = make_app(settings)
        self.imports: set[str] = set()  #: import tasks not answered yet
        self.exports: set[str] = set()
        self.targets: dict[str, str] = {}  #: target -> its export options' fingerprint
        self.sent: dict[str, set[str]] = {}  #: target -> documents already sent to it in this run
        self.waiting: dict[str, list[str]] = {}  #: target -> documents for its next export task
        self.waiting_since: float | None = None  #: when the oldest of them came
        self._numbers = iter(range(1, 1 << 62))

    def run(self, accounts: Sequence[str], full: bool) -> None:
        state = self.workspace.state
        state.forget_task_results(datetime.now(UTC) - STALE_ANSWERS)
        sources, targets = _select(self.workspace, accounts, self.report)
        for target in targets:
            try:
                self.targets[target.name] = self.workspace.export_options(target).fingerprint()
                self.sent[target.name] = set()
            except InvoiceSyncError as exc:  # one misconfigured target must not stop the others
                self.report.problem(target.name, None, str(exc))
        try:
            with self.app.connection_for_write() as connection:
                connection.ensure_connection(max_retries=2)
        except Exception as exc:  # noqa: BLE001 - kombu's own errors, socket errors: one line
            raise InvoiceSyncError(f"the Celery broker at {self.settings.redacted_broker} cannot be reached: "
                                   f"{describe(exc)}") from None
        for source in sources:
            if not source.companies:
                self.report.problem(source.name, None, "no companies chosen; run `invoicesync connect` again")
        for source_name, company_id in interleaved(sources):
            self._send(IMPORT_TASK, self.imports, source_name, company_id, full)
        self._wait()
        if not self.control.stopping:
            for account in targets:
                if account.name in self.targets:
                    self._send_backlog(account)
            self._wait()
        for account in [*sources, *targets]:
            try:
                state.record_sync(account.name, self.report.account_result(account.name))
            except Exception as exc:  # noqa: BLE001 - only the `accounts` overview misses it
                self.report.problem(account.name, None, f"could not record the sync result: {describe(exc)}")

    # -- sending ----------------------------------------------------------------------------------

    def _send(self, task: str, pending: set[str], *args: Any) -> None:
        task_id = f"{self.id}-{next(self._numbers)}"
        pending.add(task_id)
        self.app.send_task(task, args=[self.id, *args], task_id=task_id, queue=self.settings.queue)

    def _send_exports(self, target: str, document_ids: Iterator[str] | list[str], *, flush: bool = True) -> None:
        """Queue export tasks of ``export_batch`` documents; the rest waits for more (``_flush``)
        unless ``flush``."""
        batch = self.waiting.setdefault(target, [])
        for document_id in document_ids:
            if document_id in self.sent[target]:
                continue  # pushed (or tried) in this run already: the next run offers it again
            self.sent[target].add(document_id)
            batch.append(document_id)
            if self.waiting_since is None:
                self.waiting_since = time.monotonic()
            if len(batch) == self.settings.export_batch:
                self._send(EXPORT_TASK, self.exports, target, batch)
                batch = self.waiting[target] = []
        if flush:
            self._flush()

    def _flush_if_due(self) -> None:
        """Send the waiting documents once no import is left to add to them, or the oldest has
        waited ``EXPORT_LINGER``."""
        if self.waiting_since is not None and (not self.imports
                                               or time.monotonic() - self.waiting_since >= EXPORT_LINGER):
            self._flush()

    def _flush(self) -> None:
        """Send every target's waiting documents, however few."""
        for target, batch in self.waiting.items():
            if batch:
                self._send(EXPORT_TASK, self.exports, target, batch)
        self.waiting = {}
        self.waiting_since = None

    def _send_backlog(self, account: Account) -> None:
        """What the target has not taken: new targets, earlier failures, pending intents, and
        whatever a killed import stored without handing it on."""
        state = self.workspace.state
        undelivered = state.undelivered(account.name, export_options=self.targets[account.name])
        self._send_exports(account.name, (document.id for document in undelivered))

    # -- waiting ----------------------------------------------------------------------------------

    def _wait(self) -> None:
        """Until every task sent so far (and every task their answers lead to) has answered."""
        last_answer = time.monotonic()
        while self.imports or self.exports or self.waiting_since is not None:
            if self.control.stopping:
                return  # the queued tasks still run; this run reports what it has seen
            self._flush_if_due()
            answers = self.workspace.state.take_task_results(self.id)
            for task_id, answer in answers.items():
                self._take(task_id, answer)
            if answers:
                last_answer = time.monotonic()
            elif time.monotonic() - last_answer > self.settings.idle_timeout:
                self.report.fatal.append(
                    f"no task answered for {self.settings.idle_timeout:.0f} s ({len(self.imports)} import and "
                    f"{len(self.exports)} export tasks open): is `invoicesync worker` running on queue "
                    f"{self.settings.queue!r} of {self.settings.redacted_broker}? The tasks stay queued")
                return
            else:
                time.sleep(POLL_SECONDS)

    def _take(self, task_id: str, answer: dict[str, Any]) -> None:
        if task_id in self.imports:
            self.imports.discard(task_id)
            add_part(self.report, answer.get("report", {}))
            for target in self.targets:
                self._send_exports(target, list(answer.get("changed", [])), flush=False)
            if answer.get("more"):
                account, company = answer["where"]
                self._send(IMPORT_TASK, self.imports, account, company, False)
        elif task_id in self.exports:
            self.exports.discard(task_id)
            add_part(self.report, answer.get("report", {}))
        # else: a second answer of a task (redelivered), or another run's: the first one counted
