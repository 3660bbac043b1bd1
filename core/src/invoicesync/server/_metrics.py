"""``/metrics`` in the Prometheus text format (prometheus_client), one registry per app.

Three kinds of series:

- **the library**, read from the state at each scrape (so runs of every process count, CLI and timer
  runs included): ``invoicesync_documents_imported{account}`` and ``invoicesync_deliveries{target,status}``;
- **this server's runs** (Sync now and schedules), counted as they finish: ``invoicesync_runs_total``,
  ``invoicesync_run_duration_seconds`` (a histogram), ``invoicesync_run_documents_total{account,outcome}``
  and ``invoicesync_run_deliveries_total{target,status}``;
- **HTTP** of this process, counted by the core's ``HttpClient``: ``invoicesync_http_requests_total{service}``
  and ``invoicesync_http_retries_total{service}``;
- **schedules**, as the Sync page shows them: ``invoicesync_schedule_next_run_timestamp_seconds{account}``
  (an overdue one means the schedule is stuck) and ``invoicesync_schedule_last_exit_code{account}``.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..http._counters import HTTP_COUNTERS, RequestCounters
from ..models import DeliveryStatus
from ..workspace import Workspace
from ._jobs import SyncJob
from ._scheduler import Scheduler

#: Seconds; a sync takes from about a second (nothing new) to an hour (a first import of years).
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, float("inf"))


class _Library(Collector):
    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace

    def collect(self) -> Iterable[Metric]:
        counts = self.workspace.state.library_counts()
        imported = GaugeMetricFamily("invoicesync_documents_imported", "Documents in the library, by source account.",
                                     labels=["account"])
        for account, n in counts.documents.items():
            imported.add_metric([account], n)
        deliveries = GaugeMetricFamily("invoicesync_deliveries", "Documents at each target, by delivery status.",
                                       labels=["target", "status"])
        for target in sorted({t for t, _ in counts.deliveries}):
            for status in DeliveryStatus:  # every status, zeros too, so a rate or an alert has a series to read
                deliveries.add_metric([target, status.value], counts.deliveries.get((target, status.value), 0))
        return [imported, deliveries]


class _Http(Collector):
    def __init__(self, counters: RequestCounters) -> None:
        self.counters = counters

    def collect(self) -> Iterable[Metric]:
        requests, retries = self.counters.snapshot()
        sent = CounterMetricFamily("invoicesync_http_requests", "HTTP requests sent to each service (every attempt).",
                                   labels=["service"])
        for service, n in sorted(requests.items()):
            sent.add_metric([service], n)
        again = CounterMetricFamily("invoicesync_http_retries", "HTTP requests sent again after a throttle, a 5xx "
                                    "or a lost connection, by service.", labels=["service"])
        for service, n in sorted(retries.items()):
            again.add_metric([service], n)
        return [sent, again]


class _Schedules(Collector):
    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler

    def collect(self) -> Iterable[Metric]:
        next_run = GaugeMetricFamily("invoicesync_schedule_next_run_timestamp_seconds",
                                     "When each scheduled account is due next (Unix time).", labels=["account"])
        exit_code = GaugeMetricFamily("invoicesync_schedule_last_exit_code",
                                      "The exit code of each account's last scheduled attempt (75: the home was "
                                      "busy, retried).", labels=["account"])
        for plan in self.scheduler.plan():
            if plan.next_run is not None:
                next_run.add_metric([plan.account], plan.next_run.timestamp())
            code = (plan.record.last_result or {}).get("exit_code") if plan.record else None
            if isinstance(code, int):
                exit_code.add_metric([plan.account], code)
        return [next_run, exit_code]


class ServerMetrics:
    def __init__(self, workspace: Workspace, scheduler: Scheduler | None = None,
                 http: RequestCounters = HTTP_COUNTERS) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Library(workspace))
        self.registry.register(_Http(http))
        if scheduler is not None:
            self.registry.register(_Schedules(scheduler))
        self.runs = Counter("invoicesync_runs",
                            "Syncs this server ran, by trigger (manual, schedule, webhook) and exit code.",
                            ["trigger", "exit_code"], registry=self.registry)
        self.duration = Histogram("invoicesync_run_duration_seconds", "How long this server's syncs took.",
                                  ["trigger"], buckets=DURATION_BUCKETS, registry=self.registry)
        self.documents = Counter("invoicesync_run_documents", "Documents this server's syncs imported, by source "
                                 "account and outcome (new, updated, unchanged, deleted, failed).",
                                 ["account", "outcome"], registry=self.registry)
        self.deliveries = Counter("invoicesync_run_deliveries", "Deliveries this server's syncs settled, by target "
                                  "and status (delivered, failed, skipped, ...).", ["target", "status"],
                                  registry=self.registry)

    def observe(self, job: SyncJob) -> None:
        """A finished job (a ``SyncJobs`` listener). A busy one did nothing and is counted as a run only."""
        report = job.report
        self.runs.labels(job.trigger, str(report.exit_code if report else "error")).inc()
        if report is None or report.busy:
            return
        if job.finished_at is not None:
            self.duration.labels(job.trigger).observe((job.finished_at - job.started_at).total_seconds())
        for account, outcomes in report.imported_by_account.items():
            for outcome, n in outcomes.items():
                self.documents.labels(account, outcome).inc(n)
        for target, statuses in report.exported.items():
            for status, n in statuses.items():
                self.deliveries.labels(target, status).inc(n)

    def text(self) -> bytes:
        return generate_latest(self.registry)
