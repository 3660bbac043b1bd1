"""The pytest plugin (entry point ``pytest11``): fixtures for invoicesync and connector tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ..plugins import Plugins
from ..sandbox import RunningSandbox, SandboxApp, serve
from ..workspace import Workspace
from .memory import MemorySource, MemoryTarget

if TYPE_CHECKING:
    from click.testing import Result


@pytest.fixture
def invoicesync_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated home folder; secrets go to a 0600 file there, never the developer's keyring."""
    home = tmp_path / "home"
    monkeypatch.setenv("INVOICESYNC_HOME", str(home))
    monkeypatch.setenv("INVOICESYNC_SECRETS", "file")
    monkeypatch.delenv("INVOICESYNC_CONFIG", raising=False)
    monkeypatch.delenv("INVOICESYNC_STATE_URL", raising=False)  # the home's own state.db
    monkeypatch.delenv("INVOICESYNC_BLOB_URL", raising=False)  # and its own blobs/
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


@pytest.fixture
def invoicesync_cli(invoicesync_home: Path) -> Callable[..., Result]:
    """``invoicesync_cli(*args, plugins=None, input=None)``: run the ``invoicesync`` command on the
    isolated home and return click's ``Result``. With ``plugins`` (e.g. ``Plugins.from_objects``),
    the command sees those instead of the installed ones."""
    from click.testing import CliRunner

    from ..cli import cli

    def run(*args: object, plugins: Plugins | None = None, input: str | None = None) -> Result:
        return CliRunner().invoke(cli, [str(a) for a in args], input=input, catch_exceptions=False, obj=plugins)

    return run


@pytest.fixture
def memory_source() -> MemorySource:
    """An in-memory source with five documents (register it with ``Plugins.from_objects``)."""
    return MemorySource(5)


@pytest.fixture
def memory_target() -> MemoryTarget:
    """An in-memory target that counts its writes."""
    return MemoryTarget()
