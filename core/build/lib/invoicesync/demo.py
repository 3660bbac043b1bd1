"""``invoicesync demo``: the whole flow on embedded defaults — no accounts, no input.

It starts the bundled sandboxes on loopback, connects a demo account to each (the source, every
target plugin that ships a sandbox, and a local folder), runs a full sync and says where to look.
"""

from __future__ import annotations

import shutil
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from .accounts import connect, connect_to_sandbox
from .context import NonInteractiveUI, PluginKind
from .errors import ConfigError, InvoiceSyncError
from .pipeline import Progress, SyncReport, run_sync
from .plugins import Plugins
from .sandbox import RunningSandbox, serve
from .workspace import Workspace

MARKER = ".invoicesync-demo"
PREFERRED_SOURCE = "billit"


@dataclass
class DemoResult:
    report: SyncReport
    folder: Path
    home: Path
    sandboxes: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  #: target plugins the demo could not use, and why


def prepare_folder(folder: Path) -> None:
    """Start from a clean demo folder, but never delete a folder the demo did not make."""
    if folder.exists() and any(folder.iterdir()):
        if not (folder / MARKER).exists():
            raise ConfigError(f"{folder} exists and was not made by the demo; choose another --dir")
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text("made by `invoicesync demo`; safe to delete\n")


def run_demo(folder: Path, *, documents: int = 30, progress: Progress | None = None,
             plugins: Plugins | None = None) -> DemoResult:
    prepare_folder(folder)
    home, output = folder / "home", folder / "invoices"
    with ExitStack() as stack:
        workspace = stack.enter_context(Workspace.open(home, plugins=plugins))
        sources = [p for p in workspace.plugins.of_kind(PluginKind.SOURCE) if "sandbox" in p.hooks]
        if not sources:
            raise ConfigError("no source plugin with a sandbox is installed (pip install invoicesync-billit)")
        source = next((p for p in sources if p.name == PREFERRED_SOURCE), sources[0])
        targets = [p for p in workspace.plugins.of_kind(PluginKind.TARGET) if "sandbox" in p.hooks]
        result = DemoResult(SyncReport(), output, home)
        running = stack.enter_context(_start_sandbox(workspace, source.name, documents))
        result.sandboxes[source.name] = running.url
        _connect_to_sandbox(workspace, source.name, running)
        for plugin in targets:
            # A target that cannot be used without a person (or is broken) must not stop the demo.
            try:
                running = stack.enter_context(_start_sandbox(workspace, plugin.name, documents))
                _connect_to_sandbox(workspace, plugin.name, running)
            except InvoiceSyncError as exc:
                result.skipped[plugin.name] = str(exc)
                continue
            result.sandboxes[plugin.name] = running.url
        connect(workspace, "localfs", ui=NonInteractiveUI(), name="demo-folder", settings={"root": str(output)})
        result.report = run_sync(workspace, progress=progress)
        return result


def _start_sandbox(workspace: Workspace, name: str, documents: int) -> RunningSandbox:
    app = workspace.plugins.call(name, "sandbox", options={"documents": documents, "seed": 1})
    return serve(app, tls=getattr(app, "tls", False), tls_dir=workspace.home / "sandbox-ca" / name)


def _connect_to_sandbox(workspace: Workspace, name: str, running: RunningSandbox) -> None:
    connect_to_sandbox(workspace, name, running, name=f"demo-{name}")
