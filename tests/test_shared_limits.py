"""What several worker processes sharing one state share: named locks, and each (service,
credential)'s request budget — the in-flight cap, the rate and ``Retry-After`` pauses — held
across processes, and given back when a holder is killed. On SQLite and on PostgreSQL."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from invoicesync import Account, AccountDirection, PluginKind
from invoicesync.http import Budget, SharedBudget
from invoicesync.plugins import Plugins
from invoicesync.sandbox import RunningSandbox
from invoicesync.state import LockTimeout, SqliteStore
from invoicesync.state._postgres import PostgresStore
from invoicesync.state._sql import SqlStore
from invoicesync.workspace import Workspace
from invoicesync_billit import plugin as billit_plugin
from invoicesync_billit.sandbox import DEMO_API_KEY, BillitSandbox

DRIVER = Path(__file__).with_name("limits_driver.py")
KEY = "billit:books"


@pytest.fixture
def worker_env(state_backend: str, tmp_path: Path) -> dict[str, str]:
    """The environment of a worker process using the test's state (``open_store`` opens the same)."""
    env = {**os.environ, "INVOICESYNC_HOME": str(tmp_path), "INVOICESYNC_SECRETS": "file"}
    env.pop("INVOICESYNC_CONFIG", None)
    if state_backend.startswith("postgresql:"):
        env["INVOICESYNC_STATE_URL"] = state_backend
    else:
        env.pop("INVOICESYNC_STATE_URL", None)
    return env


@pytest.fixture
def holder(worker_env: dict[str, str]) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """``holder(*args)``: a worker process that takes what it is told to and says "held"."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> subprocess.Popen[str]:
        worker = subprocess.Popen([sys.executable, str(DRIVER), *args], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=worker_env)
        started.append(worker)
        assert worker.stdout is not None
        line = worker.stdout.readline()
        assert line == "held\n", (line, worker.stderr.read() if worker.stderr else "")
        return worker

    yield start
    for worker in started:
        worker.kill()
        worker.communicate()


def _until(check: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.02)


def test_a_named_lock_holds_against_another_process_and_dies_with_it(
        open_store: Callable[..., SqlStore], holder: Callable[..., subprocess.Popen[str]]) -> None:
    store = open_store()
    worker = holder("lock", "secret books/oauth_token")
    with pytest.raises(LockTimeout, match="secret books/oauth_token"), store.named_lock(
            "secret books/oauth_token", timeout=0.2):
        pass
    with store.named_lock("secret books/other", timeout=0.2):  # another name is another lock
        pass
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    with store.named_lock("secret books/oauth_token", timeout=10):
        pass


def test_a_killed_holders_budget_slots_come_back(open_store: Callable[..., SqlStore],
                                                 holder: Callable[..., subprocess.Popen[str]]) -> None:
    ledger = open_store().budget_ledger()
    worker = holder("hold", KEY, "8")
    assert ledger.acquire(KEY, 8) == (None, 0.0)  # all eight are the worker's
    slot, _ = ledger.acquire("billit:other", 8)  # another credential has slots of its own
    assert slot is not None
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    _until(lambda: ledger.acquire(KEY, 8)[0] is not None)
    taken = [ledger.acquire(KEY, 8)[0] for _ in range(7)]
    assert sorted([*taken, *(s for s in range(8) if s not in taken)]) == list(range(8))
    assert None not in taken and ledger.acquire(KEY, 8) == (None, 0.0)  # eight in all, no more


def test_one_process_holds_a_slot_once_and_gives_it_back(open_store: Callable[..., SqlStore]) -> None:
    """A PostgreSQL session (and a file descriptor) may take its own lock twice: the ledger must
    not hand one slot to two threads of one process."""
    ledger = open_store().budget_ledger()
    slots = [ledger.acquire(KEY, 3)[0] for _ in range(3)]
    assert sorted(s for s in slots if s is not None) == [0, 1, 2]
    assert ledger.acquire(KEY, 3) == (None, 0.0)
    ledger.release(KEY, 1)
    assert ledger.acquire(KEY, 3) == (1, 0.0)


def test_a_busy_process_leaves_no_slot_behind(open_store: Callable[..., SqlStore]) -> None:
    """Twelve threads of one process share four slots for a while: while some are held, the others
    keep asking for one (the ledger must not lock, again, the slots its own threads hold — once
    PostgreSQL plans the query generically it tried the lock before the "not ours" test, and each
    such second lock outlived its holder). Afterwards another process takes all four."""
    ours, theirs = open_store().budget_ledger(), open_store().budget_ledger()  # two processes' ledgers
    budget = SharedBudget(ours, KEY, concurrency=4)
    gate = threading.Barrier(12)

    def request(_: int) -> None:
        with budget.slot(), contextlib.suppress(threading.BrokenBarrierError):
            gate.wait(0.01)  # hold the slot while the others look for one

    with ThreadPoolExecutor(12) as pool:
        list(pool.map(request, range(300)))
    assert budget.used == 300
    taken = [theirs.acquire(KEY, 4)[0] for _ in range(4)]
    assert sorted(s for s in taken if s is not None) == [0, 1, 2, 3]


def test_a_pause_seen_by_one_process_holds_every_other(open_store: Callable[..., SqlStore]) -> None:
    ours, theirs = open_store().budget_ledger(), open_store().budget_ledger()  # two processes' ledgers
    theirs.pause(KEY, 30)
    slot, wait = ours.acquire(KEY, 8)
    assert slot is None and 25 < wait <= 30
    theirs.pause(KEY, 1)  # a shorter Retry-After never shortens a pause
    assert ours.acquire(KEY, 8)[1] > 25
    assert ours.acquire("billit:other", 8)[0] is not None  # other credentials go on


def test_the_rate_holds_across_processes(open_store: Callable[..., SqlStore]) -> None:
    """Four requests a minute between two processes: the bucket starts full, then each further
    request waits its turn (a reservation: the waits grow by 15 s each)."""
    ours, theirs = open_store().budget_ledger(), open_store().budget_ledger()
    waits = [ledger.reserve(KEY, 4, 60.0) for ledger in (ours, theirs, ours, theirs, ours, theirs)]
    assert waits[:4] == [0.0] * 4
    assert 10 < waits[4] <= 15 and 25 < waits[5] <= 30  # less only if the machine stalled for seconds


def test_shared_budgets_are_on_with_a_postgresql_state_or_when_asked(
        state_backend: str, monkeypatch: pytest.MonkeyPatch, workspace_factory: Callable[..., Workspace]) -> None:
    if state_backend.startswith("postgresql:"):
        monkeypatch.setenv("INVOICESYNC_STATE_URL", state_backend)
    workspace = workspace_factory(Plugins.from_objects({"billit": (PluginKind.SOURCE, billit_plugin)}))
    account = Account(name="books", plugin="billit", direction=AccountDirection.IMPORT, settings={})
    shared = state_backend.startswith("postgresql:")
    assert isinstance(workspace._new_budget(account, billit_plugin.plugin_info()), SharedBudget if shared else Budget)
    monkeypatch.setenv("INVOICESYNC_SHARED_BUDGETS", "0" if shared else "1")
    assert isinstance(workspace._new_budget(account, billit_plugin.plugin_info()), Budget if shared else SharedBudget)


def test_three_processes_keep_within_the_services_in_flight_cap(
        state_backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        serve_sandbox: Callable[..., RunningSandbox], workspace_factory: Callable[..., Workspace]) -> None:
    """Billit's sandbox answers 429 beyond 8 requests in flight per API key. Three workers with 12
    threads each (8 requests in flight per process at most) would send up to 24 at once; sharing
    the account's budget through the state they never pass 8 together, and are never throttled."""
    app = BillitSandbox(documents=1, companies=1)
    app.max_in_flight, app.latency = 8, 0.02
    server = serve_sandbox(app)
    if state_backend.startswith("postgresql:"):
        monkeypatch.setenv("INVOICESYNC_STATE_URL", state_backend)
    monkeypatch.setenv("INVOICESYNC_SHARED_BUDGETS", "1")  # on by default with PostgreSQL only
    workspace = workspace_factory(Plugins.from_objects({"billit": (PluginKind.SOURCE, billit_plugin)}))
    account = Account(name="books", plugin="billit", direction=AccountDirection.IMPORT,
                      settings=app.account_settings(server.url))
    workspace.state.save_account(account)
    workspace.secrets(account.name).set("api_key", DEMO_API_KEY)
    go = tmp_path / "go"
    workers = [subprocess.Popen([sys.executable, str(DRIVER), "requests", account.name, str(go), "60"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
               for _ in range(3)]
    go.touch()
    outcomes = [worker.communicate(timeout=120) for worker in workers]

    assert [worker.returncode for worker in workers] == [0, 0, 0], [err[-2000:] for _, err in outcomes]
    assert [json.loads(out) for out, _ in outcomes] == [{"answers": 60}] * 3
    statuses = [status for _, path, status in app.requests if path == "/v1/account/accountInformation"]
    assert len(statuses) == 180 and 429 not in statuses
    assert 4 <= app.peak_in_flight[DEMO_API_KEY] <= 8  # busy, within the cap


def test_a_429_seen_by_one_worker_pauses_the_credential_for_all(
        state_backend: str, monkeypatch: pytest.MonkeyPatch,
        serve_sandbox: Callable[..., RunningSandbox], workspace_factory: Callable[..., Workspace]) -> None:
    """Billit throttles one worker with ``Retry-After: 1``: the pause lands in the state, where
    every other worker's budget for that login reads it before its next request."""
    from invoicesync_billit.client import BillitClient

    app = BillitSandbox(documents=1, companies=1)
    server = serve_sandbox(app)
    if state_backend.startswith("postgresql:"):
        monkeypatch.setenv("INVOICESYNC_STATE_URL", state_backend)
    monkeypatch.setenv("INVOICESYNC_SHARED_BUDGETS", "1")
    workspace = workspace_factory(Plugins.from_objects({"billit": (PluginKind.SOURCE, billit_plugin)}))
    account = Account(name="books", plugin="billit", direction=AccountDirection.IMPORT,
                      settings=app.account_settings(server.url))
    workspace.state.save_account(account)
    workspace.secrets(account.name).set("api_key", DEMO_API_KEY)
    app.add_fault({"status": 429, "path": r"^/v1/account/accountInformation$", "headers": {"Retry-After": "1"}})
    ctx = workspace.context(account)
    throttled_at = time.time()
    BillitClient(ctx, workspace.settings_for(account)).account_information()  # waits the second, then succeeds
    ctx.close()

    assert [status for _, _, status in app.requests] == [429, 200]
    # Another worker's view: its own connection to the same state.
    other = PostgresStore(state_backend) if state_backend.startswith("postgresql:") else SqliteStore(
        workspace.home / "state.db")
    try:
        row = other._one("SELECT paused_until FROM budgets WHERE key = ?", (KEY,))
    finally:
        other.close()
    assert row is not None and throttled_at + 0.9 <= float(row["paused_until"]) <= time.time() + 0.1
