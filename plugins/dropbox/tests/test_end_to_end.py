"""End to end through core: `connect` with the browser flow, then `run_sync` from a memory source."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from invoicesync import PluginKind, accounts, pipeline
from invoicesync.context import NonInteractiveUI
from invoicesync.plugins import Plugins
from invoicesync.testing import MemorySource, ScriptedUI
from invoicesync_dropbox import plugin as dropbox_plugin
from invoicesync_dropbox.sandbox import DropboxSandbox


def _browser(url: str) -> None:
    assert httpx.get(url, follow_redirects=True, timeout=10).status_code == 200


def test_connect_then_sync_delivers_each_document_once(serve_sandbox: Callable[[DropboxSandbox], Any],
                                                       workspace_factory: Callable[..., Any]) -> None:
    app = DropboxSandbox(retry_after=0)
    server = serve_sandbox(app)
    source = MemorySource(23, page=7)
    plugins = Plugins.from_objects({"memory": (PluginKind.SOURCE, source),
                                    "dropbox": (PluginKind.TARGET, dropbox_plugin)})
    workspace = workspace_factory(plugins=plugins)
    accounts.connect(workspace, "memory", ui=NonInteractiveUI())
    accounts.connect(workspace, "dropbox", ui=ScriptedUI(browser=_browser),
                     settings=app.account_settings(server.url))

    report = pipeline.run_sync(workspace)
    assert not report.fatal and not report.problems, (report.fatal, report.problems)
    assert report.exported["dropbox"]["delivered"] == 23
    files = [e for e in app.namespace.entries.values() if e.kind == "file"]
    assert len(files) == 23
    assert app.count("POST", r"/2/files/upload$") + app.count("POST", r"finish_batch_v2$") <= 23

    writes = app.count("POST", r"^/2/files/(upload|upload_session/)")
    again = pipeline.run_sync(workspace)
    assert not again.fatal and not again.problems
    assert app.count("POST", r"^/2/files/(upload|upload_session/)") == writes  # a re-run writes nothing

    source.touch("m3", pdf=b"%PDF corrected m3")
    third = pipeline.run_sync(workspace)
    assert third.exported["dropbox"]["delivered"] == 1
    names = {e.display.rsplit("/", 1)[-1] for e in app.namespace.entries.values()
             if e.kind == "file" and "INV-0003" in e.display}
    assert names == {"2026-01-01_Supplier NV_INV-0003.pdf", "2026-01-01_Supplier NV_INV-0003 (2).pdf"}  # keep_both


def test_a_first_sync_makes_one_request_per_file_plus_the_listing_and_few_commits(
        serve_sandbox: Callable[[DropboxSandbox], Any], workspace_factory: Callable[..., Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 13: no more Dropbox requests than a plain script's one ``files/upload`` per file,
    give or take the index listing and the batch commits. Batches of 50 made 150 files cost
    150 + 1 + 3 commits; batches of up to 1,000, committed when the import is done, make 1.
    (The batch wait is lifted so a slow machine cannot cut the batch by time.)"""
    monkeypatch.setattr(dropbox_plugin, "BATCH_WAIT", 600.0)
    app = DropboxSandbox(retry_after=0)
    server = serve_sandbox(app)
    source = MemorySource(150, page=25)
    plugins = Plugins.from_objects({"memory": (PluginKind.SOURCE, source),
                                    "dropbox": (PluginKind.TARGET, dropbox_plugin)})
    workspace = workspace_factory(plugins=plugins)
    accounts.connect(workspace, "memory", ui=NonInteractiveUI())
    accounts.connect(workspace, "dropbox", ui=ScriptedUI(browser=_browser),
                     settings=app.account_settings(server.url))
    before = len(app.requests)

    report = pipeline.run_sync(workspace)
    assert not report.fatal and not report.problems, (report.fatal, report.problems)
    files = [e for e in app.namespace.entries.values() if e.kind == "file"]
    assert len(files) == 150
    made = [path for _, path, _ in app.requests[before:]]
    assert len(made) <= len(files) + 2, sorted(set(made))  # the listing and one commit
    assert app.count("POST", r"finish_batch_v2$") == 1
