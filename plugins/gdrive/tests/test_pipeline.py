"""End to end through the core runner: memory source → library → Drive sandbox, twice."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from invoicesync import NonInteractiveUI, PluginKind
from invoicesync.accounts import connect
from invoicesync.pipeline import EXIT_OK, run_sync
from invoicesync.plugins import Plugins
from invoicesync.testing import MemorySource
from invoicesync.workspace import Workspace
from invoicesync_gdrive import export, plugin
from invoicesync_gdrive.auth import build_auth
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


def test_a_run_of_several_batches_makes_one_drive_client_and_one_login(
        workspace_factory: Callable[..., Workspace], serve_sandbox: Any, drive_app: DriveSandbox,
        monkeypatch: pytest.MonkeyPatch) -> None:
    running = serve_sandbox(drive_app)
    workspace = workspace_factory(plugins=Plugins.from_objects({
        "memory": (PluginKind.SOURCE, MemorySource(20)), "gdrive": (PluginKind.TARGET, plugin)}))
    connect(workspace, "memory", ui=NonInteractiveUI(), name="src", companies=("*",))
    secrets = workspace.secrets("drive")
    for key, value in drive_app.account_secrets().items():
        secrets.set(key, value)
    connect(workspace, "gdrive", ui=NonInteractiveUI(), name="drive",
            settings=drive_app.account_settings(running.url))
    # An expired access token: the run must renew it once, whatever its number of batches.
    token = json.loads(secrets.get("oauth_token") or "{}")
    secrets.set("oauth_token", json.dumps({**token, "expires_at": time.time() - 60}))
    made: dict[str, int] = {"clients": 0, "logins": 0}

    class CountedClient(export.DriveClient):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            made["clients"] += 1
            super().__init__(*args, **kwargs)

    def counted_auth(*args: Any, **kwargs: Any) -> Any:
        made["logins"] += 1
        return build_auth(*args, **kwargs)

    monkeypatch.setattr(export, "DriveClient", CountedClient)
    monkeypatch.setattr(export, "build_auth", counted_auth)
    tokens = drive_app.count("POST", r"^/token$")
    batches: list[int] = []
    push = export.Exporter.push

    def counted_push(self: export.Exporter, requests: list[Any]) -> Any:
        batches.append(len(requests))
        return push(self, requests)

    monkeypatch.setattr(export.Exporter, "push", counted_push)

    report = run_sync(workspace)
    assert report.exit_code == EXIT_OK, report
    assert report.exported["drive"]["delivered"] == 20 and len(batches) >= 3
    assert made == {"clients": 1, "logins": 1}
    assert drive_app.count("POST", r"^/token$") == tokens + 1
