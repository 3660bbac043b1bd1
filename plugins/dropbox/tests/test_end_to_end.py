"""End to end through core: `connect` with the browser flow, then `run_sync` from a memory source."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
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
