"""The fixtures the pytest plugin gives connector authors work as documented."""

from __future__ import annotations

import json
from collections.abc import Callable

from click.testing import Result
from invoicesync import PluginKind
from invoicesync.plugins import Plugins
from invoicesync.testing import MemorySource, MemoryTarget


def test_cli_fixture_runs_on_the_isolated_home_with_given_plugins(
        invoicesync_cli: Callable[..., Result], memory_source: MemorySource, memory_target: MemoryTarget) -> None:
    plugins = Plugins.from_objects({"mem": (PluginKind.SOURCE, memory_source),
                                    "memt": (PluginKind.TARGET, memory_target)})
    assert invoicesync_cli("connect", "mem", plugins=plugins).exit_code == 0
    assert invoicesync_cli("connect", "memt", plugins=plugins).exit_code == 0
    result = invoicesync_cli("sync", "--json", plugins=plugins)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["imported"]["new"] == 5
    assert memory_target.writes == 5
