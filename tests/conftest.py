from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from invoicesync import PluginKind
from invoicesync import plugins as plugins_module
from invoicesync.plugins import Plugins
from invoicesync.testing import MemorySource, MemoryTarget
from invoicesync.workspace import Workspace


@pytest.fixture
def memory_plugins() -> tuple[Plugins, MemorySource, MemoryTarget]:
    source, target = MemorySource(25, page=7), MemoryTarget()
    plugins = Plugins.from_objects({
        "memory": (PluginKind.SOURCE, source),
        "memtarget": (PluginKind.TARGET, target),
    })
    from invoicesync.builtins import localfs

    plugins.register("localfs", localfs, kind=PluginKind.TARGET)
    return plugins, source, target


@pytest.fixture
def memory_workspace(workspace_factory: Callable[..., Workspace],
                     memory_plugins: tuple[Plugins, MemorySource, MemoryTarget]) -> Workspace:
    from invoicesync.accounts import connect
    from invoicesync.context import NonInteractiveUI

    workspace = workspace_factory(plugins=memory_plugins[0])
    connect(workspace, "memory", ui=NonInteractiveUI())
    connect(workspace, "memtarget", ui=NonInteractiveUI())
    return workspace


@pytest.fixture
def cli_plugins(memory_plugins: tuple[Plugins, MemorySource, MemoryTarget]) -> Iterator[Plugins]:
    """Make the CLI see the in-memory plugins instead of the installed ones."""
    previous = plugins_module._installed
    plugins_module._installed = memory_plugins[0]
    yield memory_plugins[0]
    plugins_module._installed = previous
