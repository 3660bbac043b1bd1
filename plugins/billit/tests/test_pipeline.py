"""End to end through core's runner: Billit sandbox → library → a memory target, run after run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from invoicesync import NonInteractiveUI, PluginKind
from invoicesync.accounts import connect
from invoicesync.pipeline import EXIT_OK, EXIT_PARTIAL, run_sync
from invoicesync.plugins import Plugins
from invoicesync.testing import MemoryTarget
from invoicesync.workspace import Workspace
from invoicesync_billit import plugin
from invoicesync_billit.sandbox import BillitSandbox


def test_sync_imports_every_wanted_order_once_and_follows_changes(
        workspace_factory: Callable[..., Workspace], serve_sandbox: Any) -> None:
    app = BillitSandbox(documents=150, companies=2, seed=4)
    running = serve_sandbox(app)
    target = MemoryTarget()
    workspace = workspace_factory(plugins=Plugins.from_objects({
        "billit": (PluginKind.SOURCE, plugin), "memory": (PluginKind.TARGET, target)}))
    for key, value in app.account_secrets().items():
        workspace.secrets("books").set(key, value)
    account = connect(workspace, "billit", ui=NonInteractiveUI(), name="books",
                      settings=app.account_settings(running.url), companies=("*",))
    connect(workspace, "memory", ui=NonInteractiveUI(), name="archive")
    assert len(account.companies) == 2
    wanted = sum(1 for c in app.companies for o in c.orders.values() if o["OrderType"] in ("Invoice", "CreditNote"))

    first = run_sync(workspace)
    assert first.exit_code == EXIT_OK, first.as_dict()
    assert first.imported["new"] == wanted
    assert target.writes == wanted

    # Edits, a deletion and one malformed order: the bad one alone fails, named.
    orders = sorted(o for o in app.company().orders if app.company().orders[o]["OrderType"] == "Invoice")
    app.edit_order(orders[0], Paid=True, OrderStatus="Paid")
    app.delete_order(orders[1])
    app.edit_order(orders[2], regenerate=False, TotalIncl="12,50")
    bad_number = app.company().orders[orders[2]]["OrderNumber"]

    second = run_sync(workspace)
    assert second.exit_code == EXIT_PARTIAL
    assert second.imported["updated"] == 1 and second.imported["deleted"] == 1
    assert [p for p in second.problems if bad_number in (p.document or "") + p.message]
    assert target.writes == wanted + 1

    app.edit_order(orders[2], regenerate=False, TotalIncl=99.0)
    third = run_sync(workspace)
    assert third.exit_code == EXIT_OK, third.as_dict()
    assert third.imported["updated"] == 1 and not third.imported["new"]
    assert target.writes == wanted + 2


def _sync_against_capped_sandbox(workspace_factory: Callable[..., Workspace], serve_sandbox: Any, *,
                                 cap: int, settings: dict[str, Any]) -> tuple[BillitSandbox, Any]:
    app = BillitSandbox(documents=40, companies=2, seed=5)
    app.latency = 0.02  # requests overlap, so the cap is reached if the runner ever exceeds it
    app.max_in_flight = cap
    running = serve_sandbox(app)
    workspace = workspace_factory(plugins=Plugins.from_objects({
        "billit": (PluginKind.SOURCE, plugin), "memory": (PluginKind.TARGET, MemoryTarget())}))
    for key, value in app.account_secrets().items():
        workspace.secrets("books").set(key, value)
    connect(workspace, "billit", ui=NonInteractiveUI(), name="books",
            settings={**app.account_settings(running.url), **settings}, companies=("*",))
    connect(workspace, "memory", ui=NonInteractiveUI(), name="archive")
    return app, run_sync(workspace)


def test_the_runner_keeps_to_billits_default_of_eight_requests_in_flight(
        workspace_factory: Callable[..., Workspace], serve_sandbox: Any) -> None:
    app, report = _sync_against_capped_sandbox(workspace_factory, serve_sandbox, cap=8, settings={})
    assert report.exit_code == EXIT_OK, report.as_dict()
    assert not [r for r in app.requests if r[2] == 429]


def test_an_accounts_max_in_flight_setting_lowers_the_limit(
        workspace_factory: Callable[..., Workspace], serve_sandbox: Any) -> None:
    # The fetch threads and the early PDF downloads would exceed a cap of 2 without the setting.
    app, report = _sync_against_capped_sandbox(workspace_factory, serve_sandbox, cap=2,
                                               settings={"max_in_flight": 2})
    assert report.exit_code == EXIT_OK, report.as_dict()
    assert not [r for r in app.requests if r[2] == 429]


def test_more_orders_are_fetched_at_once_than_requests_may_be_in_flight() -> None:
    # A fetch holds a request slot only while a request is out; between two it parses, stores and
    # waits for the PDF downloading beside its detail. As many fetches as slots left slots idle
    # (timeline.py: ~5 of 8 in flight at 25 ms); the budget, not the fetch count, keeps the cap.
    info = plugin.plugin_info()
    assert info.max_in_flight is not None
    assert info.concurrency >= 2 * info.max_in_flight
