"""Plugin loading and routing: one plugin per call, broken plugins reported and skipped."""

from __future__ import annotations

import sys
import textwrap
import threading
import types
from pathlib import Path

import pytest
from invoicesync import Account, AccountDirection, PluginError, PluginInfo, PluginKind, hookimpl
from invoicesync.plugins import Plugins
from invoicesync.testing import MemorySource, MemoryTarget
from stevedore import ExtensionManager


class Spy(MemorySource):
    def __init__(self) -> None:
        super().__init__(3)
        self.listed = 0

    @hookimpl
    def list_documents(self, account, company, cursor, ctx):  # type: ignore[no-untyped-def]
        self.listed += 1
        return iter(())


def test_a_routed_hook_runs_on_the_chosen_plugin_only() -> None:
    first, second = Spy(), Spy()
    plugins = Plugins.from_objects({"first": (PluginKind.SOURCE, first), "second": (PluginKind.SOURCE, second)})
    account = Account(name="a", plugin="second", direction=AccountDirection.IMPORT)
    plugins.call("second", "list_documents", account=account, company=None, cursor=None, ctx=None)
    assert (first.listed, second.listed) == (0, 1)
    with pytest.raises(PluginError, match="no plugin called 'third'"):
        plugins.call("third", "list_documents")


class Misspelled(MemoryTarget):
    @hookimpl
    def push_document(self, account, requests, ctx):  # type: ignore[no-untyped-def]  # missing "s"
        return []


class TooNew(MemoryTarget):
    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(kind=PluginKind.TARGET, title="future", api_version=(7, 9))


class Unversioned(MemoryTarget):
    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(kind=PluginKind.TARGET, title="says nothing of its API")  # type: ignore[call-arg]


class WrongArgs(MemoryTarget):
    @hookimpl
    def auth(self, account, ctx, password):  # type: ignore[no-untyped-def]  # not in the spec
        return []


def test_broken_plugins_are_refused_with_a_reason_and_the_rest_keep_working() -> None:
    plugins = Plugins.from_objects({
        "good": (PluginKind.TARGET, MemoryTarget()),
        "typo": (PluginKind.TARGET, Misspelled()),
        "future": (PluginKind.TARGET, TooNew()),
        "args": (PluginKind.TARGET, WrongArgs()),
        "unversioned": (PluginKind.TARGET, Unversioned()),
        "wrongkind": (PluginKind.SOURCE, MemoryTarget()),
    })
    assert list(plugins.loaded) == ["good"]
    errors = {f.name: f.error for f in plugins.failures}
    assert "unknown hook 'push_document' (misspelled?)" in errors["typo"]
    assert "supports invoicesync plugin API 7..9" in errors["future"]
    assert "does not match its spec" in errors["args"]
    assert "invalid PluginInfo: api_version (field required)" in errors["unversioned"]
    assert "is a target but is registered as a source" in errors["wrongkind"]
    # A refused plugin leaves nothing behind in the hook manager.
    assert [plugins.pm.get_name(p) for p in plugins.pm.get_plugins()] == ["good"]
    with pytest.raises(PluginError, match="failed to load"):
        plugins.get("typo")


def test_an_entry_point_that_fails_to_import_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dist = tmp_path / "invoicesync_broken-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: invoicesync-broken\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(textwrap.dedent("""
        [invoicesync.targets]
        broken = invoicesync_broken_module_that_does_not_exist
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(ExtensionManager, "ENTRY_POINT_CACHE", {})  # stevedore caches per process
    plugins = Plugins.discover()
    assert "localfs" in plugins.loaded
    failure = next(f for f in plugins.failures if f.name == "broken")
    assert "ModuleNotFoundError" in failure.error
    assert sys.modules.get("invoicesync_broken_module_that_does_not_exist") is None


def test_load_plugins_env_limits_what_is_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVOICESYNC_LOAD_PLUGINS", "")
    assert Plugins.discover().loaded == {}
    monkeypatch.setenv("INVOICESYNC_LOAD_PLUGINS", "localfs")
    assert list(Plugins.discover().loaded) == ["localfs"]


def test_builtin_localfs_is_registered_like_any_plugin() -> None:
    plugins = Plugins.discover(only=["localfs"])
    localfs = plugins.get("localfs", PluginKind.TARGET)
    assert localfs.distribution == "invoicesync"
    assert {"plugin_info", "auth", "push_documents"} <= set(localfs.hooks)


FAKE_TARGET = '''
from invoicesync import Company, PluginInfo, PluginKind, hookimpl

@hookimpl
def plugin_info():
    return PluginInfo(kind=PluginKind.TARGET, title="{name}", api_version=(1, 2))

@hookimpl
def auth(account, ctx):
    return [Company(id="{name}", name="{name}")]

@hookimpl
def push_documents(account, requests, ctx):
    return iter(())
'''


def fake_targets(tmp_path: Path, names: list[str], extra: str = "") -> None:
    for name in names:
        (tmp_path / f"{name}.py").write_text(FAKE_TARGET.replace("{name}", name))
    dist = tmp_path / "invoicesync_fakes-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: invoicesync-fakes\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[invoicesync.targets]\n" + "".join(f"{n} = {n}\n" for n in names) + extra)


def test_lazy_discovery_imports_a_plugin_only_when_it_is_asked_for(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    fake_targets(tmp_path, ["lazy_one", "lazy_two"])
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins = Plugins.discover(lazy=True)
    account = Account(name="x", plugin="lazy_one", direction=AccountDirection.EXPORT)
    assert plugins.call("lazy_one", "auth", account=account, ctx=None)[0].id == "lazy_one"
    assert "lazy_one" in sys.modules and "lazy_two" not in sys.modules
    plugins.get("lazy_two")  # a later load ...
    # ... leaves earlier routing intact: lazy_one's hook still answers alone (not lazy_two first).
    assert plugins.call("lazy_one", "auth", account=account, ctx=None)[0].id == "lazy_one"
    assert {"lazy_one", "lazy_two", "localfs"} <= set(plugins.loaded)  # `loaded` imports the rest


def test_two_threads_asking_for_a_plugin_first_both_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first thread to ask imports the plugin; a second asking meanwhile waits for that import
    instead of finding the plugin neither pending nor loaded ("no plugin called ...")."""
    fake_targets(tmp_path, ["slow_import"])
    module = tmp_path / "slow_import.py"
    module.write_text("import plugin_import_gate as gate\ngate.started.set()\ngate.go.wait(30)\n"
                      + module.read_text())
    gate = types.ModuleType("plugin_import_gate")
    gate.started, gate.go = threading.Event(), threading.Event()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "plugin_import_gate", gate)
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins = Plugins.discover(lazy=True)
    answers: dict[str, object] = {}

    def ask(who: str) -> None:
        try:
            answers[who] = plugins.get("slow_import").name
        except PluginError as error:
            answers[who] = error

    first = threading.Thread(target=ask, args=("first",))
    first.start()
    assert gate.started.wait(30)  # type: ignore[attr-defined]  # the first is importing it now
    second = threading.Thread(target=ask, args=("second",))
    second.start()
    second.join(1)  # it fails at once on a racy get; otherwise it waits for the import
    gate.go.set()  # type: ignore[attr-defined]
    first.join(30)
    second.join(30)
    assert answers == {"first": "slow_import", "second": "slow_import"}


def test_lazy_discovery_reports_a_plugin_that_fails_to_import_when_asked_for(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_targets(tmp_path, [], "broken_lazy = invoicesync_lazy_module_that_does_not_exist\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins = Plugins.discover(lazy=True)
    with pytest.raises(PluginError, match="failed to load: ModuleNotFoundError"):
        plugins.get("broken_lazy")
    assert plugins.get("localfs").name == "localfs"
    assert [f.name for f in plugins.failures] == ["broken_lazy"]


def test_the_cli_view_of_plugins_is_lazy() -> None:
    import subprocess

    script = ("import sys; from invoicesync.cli._common import default_plugins; p = default_plugins(); "
              "p.get('localfs'); "
              "print(sorted(m for m in sys.modules if m.startswith('invoicesync_')))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"  # localfs is built in; no other plugin was imported


def test_the_cli_uses_the_plugins_it_is_handed_and_keeps_no_global(
        memory_plugins: tuple[Plugins, MemorySource, MemoryTarget], invoicesync_home: Path) -> None:
    """stevedore's and pluggy's habit: a manager object is passed on, never swapped in a global."""
    import json

    from click.testing import CliRunner
    from invoicesync.cli import cli
    from invoicesync.cli._common import default_plugins

    def listed(obj: Plugins | None) -> set[str]:
        result = CliRunner().invoke(cli, ["plugins", "--json"], catch_exceptions=False, obj=obj)
        return {p["name"] for p in json.loads(result.stdout)["plugins"]}

    assert listed(memory_plugins[0]) == {"memory", "memtarget", "localfs"}
    assert "memory" not in listed(None)  # the next command, handed nothing, sees the installed ones
    assert default_plugins() is default_plugins()  # discovered once per process, at the CLI's edge
    assert Plugins.installed() is not Plugins.installed()  # the library itself keeps no instance
