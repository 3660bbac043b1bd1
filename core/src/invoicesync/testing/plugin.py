"""The pytest plugin (entry point ``pytest11``): fixtures for invoicesync and connector tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ..plugins import Plugins
from ..sandbox import RunningSandbox, SandboxApp, serve
from ..workspace import Workspace


@pytest.fixture
def invoicesync_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated home folder; secrets go to a 0600 file there, never the developer's keyring."""
    home = tmp_path / "home"
    monkeypatch.setenv("INVOICESYNC_HOME", str(home))
    monkeypatch.setenv("INVOICESYNC_SECRETS", "file")
    monkeypatch.delenv("INVOICESYNC_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    return home


@pytest.fixture
def workspace_factory(invoicesync_home: Path) -> Iterator[Callable[..., Workspace]]:
    """``workspace_factory(plugins=None, **kwargs)``: open the isolated home; closed at teardown."""
    opened: list[Workspace] = []

    def make(plugins: Plugins | None = None, **kwargs: Any) -> Workspace:
        workspace = Workspace.open(invoicesync_home, plugins=plugins, **kwargs)
        opened.append(workspace)
        return workspace

    yield make
    for workspace in opened:
        workspace.close()


@pytest.fixture
def serve_sandbox() -> Iterator[Callable[..., RunningSandbox]]:
    """``serve_sandbox(app, tls=False)``: run a sandbox on loopback for the test's duration."""
    running: list[RunningSandbox] = []

    def start(app: SandboxApp, **kwargs: Any) -> RunningSandbox:
        server = serve(app, **kwargs)
        running.append(server)
        return server

    yield start
    for server in running:
        server.stop()
