"""End to end through the core runner: memory source → library → Drive sandbox, twice."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from invoicesync import NonInteractiveUI, PluginKind
from invoicesync.accounts import connect
from invoicesync.pipeline import EXIT_OK, run_sync
from invoicesync.plugins import Plugins
from invoicesync.testing import MemorySource
from invoicesync.workspace import Workspace
from invoicesync_gdrive import plugin
from invoicesync_gdrive.sandbox import DriveSandbox


def test_sync_exports_each_document_once(workspace_factory: Callable[..., Workspace], serve_sandbox: Any,
                                         drive_app: DriveSandbox) -> None:
    running = serve_sandbox(drive_app)
    workspace = workspace_factory(plugins=Plugins.from_objects({
        "memory": (PluginKind.SOURCE, MemorySource(10)), "gdrive": (PluginKind.TARGET, plugin)}))
    connect(workspace, "memory", ui=NonInteractiveUI(), name="src", companies=("*",))
    for key, value in drive_app.account_secrets().items():
        workspace.secrets("drive").set(key, value)
    connect(workspace, "gdrive", ui=NonInteractiveUI(), name="drive",
            settings=drive_app.account_settings(running.url))

    report = run_sync(workspace)
    assert report.exit_code == EXIT_OK, report
    assert report.exported["drive"]["delivered"] == 10
    pdfs = [f for f in drive_app.store.files.values() if f.mime_type == "application/pdf"]
    assert sorted(f.name for f in pdfs) == sorted(f"2026-01-01_Supplier NV_INV-{i:04d}.pdf" for i in range(10))
    writes = drive_app.count("POST", r"^/upload/") + drive_app.count("PATCH", r"^/upload/")

    again = run_sync(workspace, full=True)
    assert again.exit_code == EXIT_OK, again
    assert drive_app.count("POST", r"^/upload/") + drive_app.count("PATCH", r"^/upload/") == writes
