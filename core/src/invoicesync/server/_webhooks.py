"""``POST /webhooks/{account}/{company}``: a source's service says a document changed; sync that company.

Outside the login and CSRF check (the service has neither): a delivery is acted on only when its
signature checks out with the secret the service gave at registration, it was signed within the
tolerance, and it was not received before (``invoicesync.webhooks.verify``). Anything else is a
bare ``401``; the reason goes to the log, never to the caller.

Deliveries are debounced per company: the first starts a short window, the ones within it join it,
and then one sync of the companies that were named runs through the dashboard's own ``SyncJobs``
(the home's runner lock, like every other sync). When a sync is already running, or another
process holds the lock, the companies wait and go next.

Registration: with an ``https://`` public URL, every source account whose plugin has the webhook
hooks is registered at start, after a connect from the dashboard (``refresh``), and re-checked
every ``SWEEP_SECONDS`` (an account connected from the CLI, a registration that failed).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ..errors import InvoiceSyncError, WebhookRefused
from ..models import AccountDirection
from ..secrets import redact
from ..webhooks import TOLERANCE_SECONDS, subscribe, supports_webhooks, verify
from ..workspace import Workspace
from ._jobs import SyncJob, SyncJobs

log = logging.getLogger("invoicesync.server.webhooks")

MAX_BODY = 256 * 1024  # Billit's deliveries are a few hundred bytes; a bigger body is refused unread
DEBOUNCE_SECONDS = 2.0
SWEEP_SECONDS = 300.0
BUSY_RETRY_SECONDS = 5.0  # another process holds the runner lock: try again this much later

Key = tuple[str, str]  # (account, company)


class Debouncer:
    """Collects (account, company) pairs and starts one sync of them once the window has passed."""

    def __init__(self, jobs: SyncJobs, seconds: float = DEBOUNCE_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.jobs = jobs
        self.seconds = seconds
        self.clock = clock
        self.due: dict[Key, float] = {}
        self.started: list[SyncJob] = []  #: the syncs it started (tests and the log read it)
        self._wake = threading.Condition()
        self._stopping = False
        self._waiting_for: SyncJob | None = None

    def poke(self, account: str, company: str) -> None:
        with self._wake:
            self.due.setdefault((account, company), self.clock() + self.seconds)  # later pokes join the window
            self._wake.notify()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()

    def run(self) -> None:
        while True:
            with self._wake:
                if self._stopping:
                    return
                ready = self._ready()
                if not ready:
                    self._wake.wait(self._timeout())
                    continue
            self._start(ready)

    def _timeout(self) -> float | None:
        if self._waiting_for is not None and not self._waiting_for.done.is_set():
            return 0.2
        return max(0.0, min(self.due.values()) - self.clock()) if self.due else None

    def _ready(self) -> list[Key]:
        """The pairs whose window has passed, once no sync is running (a running one may have listed
        before the change: the companies go in the next one); a sync that found the lock held puts
        its companies back."""
        job = self._waiting_for
        if job is not None:
            if not job.done.is_set():
                return []
            self._waiting_for = None
            if job.report is not None and job.report.busy:
                retry = self.clock() + BUSY_RETRY_SECONDS
                for account, companies in job.companies.items():
                    for company in companies:
                        self.due.setdefault((account, company), retry)
        now = self.clock()
        return sorted(key for key, due in self.due.items() if due <= now)

    def _start(self, ready: list[Key]) -> None:
        companies: dict[str, tuple[str, ...]] = {}
        for account, company in ready:
            companies[account] = (*companies.get(account, ()), company)
        job = self.jobs.start_if_idle(list(companies), trigger="webhook", companies=companies)
        with self._wake:
            if job is None:  # a "Sync now" or a schedule is running: come back when it is done
                self._waiting_for = self.jobs.current
                return
            for key in ready:
                self.due.pop(key, None)
            self._waiting_for = job
            self.started.append(job)
        log.info("webhook sync started for %s", ", ".join(f"{a}/{c}" for a, c in ready))


class WebhookReceiver:
    """The endpoint, the debouncer and the registrations of one dashboard."""

    def __init__(self, workspace: Workspace, jobs: SyncJobs, public_url: str | None, *,
                 debounce: float = DEBOUNCE_SECONDS, tolerance: float = TOLERANCE_SECONDS) -> None:
        self.workspace = workspace
        self.public_url = public_url if public_url and public_url.startswith("https://") else None
        self.tolerance = tolerance
        self.debouncer = Debouncer(jobs, debounce)
        self.problems: dict[str, str] = {}  #: account → why its registration failed (last sweep)
        self._registering = threading.Lock()  # the start's sweep and a connect's refresh never overlap
        self._sweep_now = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def routes(self) -> list[Route]:
        return [Route("/webhooks/{account}/{company}", self.receive, methods=["POST"])]

    async def receive(self, request: Request) -> Response:
        account, company = request.path_params["account"], request.path_params["company"]
        body = await _read_limited(request)
        try:
            if body is None:
                raise WebhookRefused(f"the body is larger than {MAX_BODY} bytes")
            headers = dict(request.headers)
            _, event = await run_in_threadpool(verify, self.workspace, account, company, headers, body,
                                               tolerance=self.tolerance)
        except WebhookRefused as exc:
            log.warning("webhook for %r/%r refused: %s", account, company, redact(str(exc)))  # %r: from the URL
            return PlainTextResponse("refused", status_code=401)
        log.info("webhook for %s/%s: %s changed", account, company, ", ".join(event.document_ids) or "something")
        self.debouncer.poke(account, company)
        return PlainTextResponse("ok")

    # -- registration -------------------------------------------------------------------------

    def register_all(self) -> None:
        """Register every source account that can have webhooks and has none at this address yet."""
        if self.public_url is None:
            return
        with self._registering:
            self._register_all(self.public_url)

    def _register_all(self, public_url: str) -> None:
        for account in self.workspace.accounts():
            if account.direction is not AccountDirection.IMPORT or not supports_webhooks(self.workspace, account):
                continue
            try:
                done = subscribe(self.workspace, account, public_url)
                self.problems.pop(account.name, None)
            except InvoiceSyncError as exc:
                self.problems[account.name] = redact(str(exc))
                log.warning("could not register the webhooks of %s: %s", account.name, self.problems[account.name])
                continue
            if done:
                log.info("webhooks registered for %s: companies %s", account.name, ", ".join(done))

    def refresh(self) -> None:
        """Register soon (an account was just connected)."""
        self._sweep_now.set()

    def _sweep(self) -> None:
        while not self._stopping.is_set():
            try:
                self.register_all()
            except Exception:  # the next sweep tries again; the server keeps serving
                log.exception("webhook registration failed")
            self._sweep_now.wait(SWEEP_SECONDS)
            self._sweep_now.clear()

    def start(self) -> None:
        self._threads = [threading.Thread(target=self.debouncer.run, name="invoicesync-webhook-debounce", daemon=True)]
        if self.public_url is not None:
            self._threads.append(threading.Thread(target=self._sweep, name="invoicesync-webhook-register",
                                                  daemon=True))
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._sweep_now.set()
        self.debouncer.stop()
        for thread in self._threads:
            thread.join(10)


async def _read_limited(request: Request) -> bytes | None:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return None
    return bytes(body)
