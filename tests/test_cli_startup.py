"""``invoicesync --help`` draws the CLI without importing plugins or heavy libraries; commands load on use."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from invoicesync import PluginInfo, PluginKind, hookimpl
from invoicesync.cli import CORE_COMMANDS, cli
from invoicesync.plugins import GROUPS, Plugins

#: Imported only when a command needs them, never to print the help.
HEAVY = ("httpx", "pydantic", "rich", "msal", "google", "stevedore", "pluggy", "invoicesync.plugins",
         "invoicesync.workspace", "invoicesync.context")


def modules_after(args: list[str], env: dict[str, str] | None = None) -> tuple[str, set[str]]:
    """Run the CLI in a fresh interpreter; return what it printed and every module it imported."""
    script = textwrap.dedent(f"""
        import contextlib, io, json, sys
        from invoicesync.cli import main
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            try:
                main({args!r})
            except SystemExit:
                pass
        # (a ``None`` entry is an import refused in advance, not a module: see without_httpx_command_line)
        modules = sorted(name for name, module in sys.modules.items() if module is not None)
        print(json.dumps({{"out": out.getvalue(), "modules": modules}}))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                          env={**os.environ, **(env or {})})
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["out"], set(result["modules"])


def plugin_modules() -> set[str]:
    return {ep.value.split(":")[0] for group in GROUPS.values() for ep in metadata.entry_points(group=group)}


def test_help_imports_no_plugin_and_no_heavy_library() -> None:
    assert plugin_modules()  # the installed plugins (billit, dropbox, localfs, ...) are there to be avoided
    out, modules = modules_after(["--help"])
    assert "sync" in out and "connect" in out
    assert not plugin_modules() & modules  # entry-point modules, the built-in localfs included
    assert not any(m.startswith("invoicesync_") for m in modules)
    assert not [m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY]


def test_a_command_imports_what_it_needs_when_it_runs() -> None:
    _out, modules = modules_after(["plugins", "--help"])
    assert "invoicesync.cli._plugins" in modules
    assert "invoicesync.cli._sync" not in modules  # only the command asked for


@pytest.mark.parametrize("name", sorted(CORE_COMMANDS))
def test_the_help_line_of_each_core_command_is_its_own(name: str) -> None:
    module, attribute, line = CORE_COMMANDS[name]
    command = getattr(importlib.import_module(module, "invoicesync.cli"), attribute)
    assert command.name == name
    assert line == command.get_short_help_str(limit=1000)


def test_every_core_command_runs_through_the_lazy_group() -> None:
    for name in CORE_COMMANDS:
        result = CliRunner().invoke(cli, [name, "--help"])
        assert result.exit_code == 0, result.output


def test_a_plugin_command_from_an_entry_point_is_listed_without_import_and_runs(tmp_path: Path) -> None:
    (tmp_path / "hello_cmd.py").write_text(textwrap.dedent("""
        import click

        @click.command()
        def hello():
            \"\"\"Say hello from a plugin.\"\"\"
            click.echo("hello from the plugin")
    """))
    dist = tmp_path / "hello_cmd-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hello-cmd\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[invoicesync.commands]\nhello = hello_cmd:hello\n")
    env = {"PYTHONPATH": str(tmp_path)}
    out, modules = modules_after(["--help"], env)
    assert "hello" in out and "hello-cmd" in out
    assert "hello_cmd" not in modules
    out, modules = modules_after(["hello"], env)
    assert out.strip() == "hello from the plugin"
    assert not any(m.startswith("invoicesync_") for m in modules)  # the source/target plugins stay unloaded


class LegacyCommands:
    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(kind=PluginKind.TARGET, title="Legacy", api_version=(1, 1))

    @hookimpl
    def auth(self, account: object, ctx: object) -> list[object]:
        return []

    @hookimpl
    def push_documents(self, account: object, requests: object, ctx: object) -> list[object]:
        return []

    @hookimpl
    def register_commands(self, cli: click.Group) -> None:
        @cli.command(name="legacy-status")
        def legacy_status() -> None:
            click.echo("legacy ok")


def test_an_api_1_plugin_registering_commands_through_the_hook_still_works() -> None:
    plugins = Plugins.from_objects({"legacy": (PluginKind.TARGET, LegacyCommands())})
    try:
        result = CliRunner().invoke(cli, ["legacy-status"], obj=plugins)
        assert result.exit_code == 0, result.output
        assert result.output.strip() == "legacy ok"
    finally:
        cli.commands.pop("legacy-status", None)
