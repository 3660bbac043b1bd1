"""End to end through the core runner: memory source → library → Business Central sandbox."""

from __future__ import annotations

from collections.abc import Callable

from invoicesync import NonInteractiveUI, PluginKind
from invoicesync.accounts import connect
from invoicesync.pipeline import EXIT_OK, run_sync
from invoicesync.plugins import Plugins
from invoicesync.sandbox import RunningSandbox
from invoicesync.testing import MemorySource
from invoicesync.workspace import Workspace
from invoicesync_dynamics365 import plugin
from invoicesync_dynamics365.sandbox import DEMO_SECRET, BusinessCentralSandbox


def test_sync_exports_each_purchase_invoice_once(workspace_factory: Callable[..., Workspace],
                                                  serve_sandbox: Callable[..., RunningSandbox]) -> None:
    app = BusinessCentralSandbox()
    company = app.add_company("CRONUS BE")
    company.add_vendor("Supplier NV", "BE 0999.999.999")
    running = serve_sandbox(app, tls=True)
    app.ca_file = str(running.ca_file)
    source = MemorySource(12)
    workspace = workspace_factory(plugins=Plugins.from_objects({
        "memory": (PluginKind.SOURCE, source), "dynamics365": (PluginKind.TARGET, plugin)}))
    connect(workspace, "memory", ui=NonInteractiveUI(), name="src", companies=("*",))
    workspace.secrets("bc").set("client_secret", DEMO_SECRET)
    settings = {k: v for k, v in app.account_settings(running.url).items() if k != "create_missing_vendors"}
    connect(workspace, "dynamics365", ui=NonInteractiveUI(), name="bc", settings=settings, companies=("*",))

    report = run_sync(workspace)
    assert report.exit_code == EXIT_OK, report
    invoices = company.documents["purchaseInvoices"].values()
    assert sorted(i["vendorInvoiceNumber"] for i in invoices) == [f"INV-{i:04d}" for i in range(12)]
    assert len(company.attachments["documentAttachments"]) == 12
    writes = app.count("POST", r"/api/v2\.0/")

    again = run_sync(workspace, full=True)
    assert again.exit_code == EXIT_OK, again
    assert app.count("POST", r"/api/v2\.0/") == writes and company.posted == 0


def test_a_new_supplier_becomes_one_vendor_across_concurrent_batches(
        workspace_factory: Callable[..., Workspace], serve_sandbox: Callable[..., RunningSandbox]) -> None:
    # 40 documents from one supplier BC does not know: four batches, two exported at once.
    app = BusinessCentralSandbox()
    company = app.add_company("CRONUS BE")
    running = serve_sandbox(app, tls=True)
    app.ca_file = str(running.ca_file)
    # A slow vendor create, so the other worker's batch looks for the vendor while it is being made.
    app.add_fault({"action": "delay", "seconds": 0.5, "method": "POST", "path": r"/vendors$", "times": None})
    workspace = workspace_factory(plugins=Plugins.from_objects({
        "memory": (PluginKind.SOURCE, MemorySource(40)), "dynamics365": (PluginKind.TARGET, plugin)}))
    connect(workspace, "memory", ui=NonInteractiveUI(), name="src", companies=("*",))
    workspace.secrets("bc").set("client_secret", DEMO_SECRET)
    connect(workspace, "dynamics365", ui=NonInteractiveUI(), name="bc",
            settings=app.account_settings(running.url), companies=("*",))

    report = run_sync(workspace)
    assert report.exit_code == EXIT_OK, report
    assert [v["displayName"] for v in company.vendors.values()] == ["Supplier NV"]
    assert len(company.documents["purchaseInvoices"]) == 40
