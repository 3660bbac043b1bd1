"""The runner as ops use it: commands, JSON output and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from invoicesync.cli import cli
from invoicesync.plugins import Plugins
from invoicesync.testing import MemorySource, MemoryTarget


def run(*args: str, plugins: Plugins | None = None) -> tuple[int, str]:
    """Exit code and everything printed (stdout and stderr interleaved)."""
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False, obj=plugins)
    return result.exit_code, result.output


def run_json(*args: str, plugins: Plugins | None = None) -> object:
    result = CliRunner().invoke(cli, [*args, "--json"], catch_exceptions=False, obj=plugins)
    return json.loads(result.stdout)


def test_plugins_lists_the_builtin_localfs() -> None:
    data = run_json("plugins")
    assert {"name": "localfs", "kind": "target"}.items() <= next(
        p for p in data["plugins"] if p["name"] == "localfs").items()


def test_the_whole_flow_with_exit_codes(cli_plugins: Plugins, memory_plugins: tuple[Plugins, MemorySource,
                                                                                    MemoryTarget],
                                        invoicesync_home: Path, tmp_path: Path) -> None:
    _, source, _target = memory_plugins
    assert run("connect", "memory", plugins=cli_plugins)[0] == 0
    code, output = run("connect", "localfs", "--name", "archive", "--root", str(tmp_path / "out"), plugins=cli_plugins)
    assert code == 0 and "Connected archive (localfs, export)" in output
    accounts = run_json("accounts", plugins=cli_plugins)
    assert [(a["name"], a["direction"]) for a in accounts] == [("archive", "export"), ("memory", "import")]

    code, output = run("sync", "--dry-run", plugins=cli_plugins)
    assert code == 0 and "Dry run: nothing was written" in output and "would write" in output
    assert not (tmp_path / "out" / "Acme BV").exists()

    source.records[2].broken = True
    code, output = run("sync", plugins=cli_plugins)
    assert code == 1  # partial: one document failed, the rest went through
    assert "24 new" in output and "m2" in output and "field TotalIncl" in output
    source.records[2].broken = False
    report = run_json("sync", plugins=cli_plugins)
    assert isinstance(report, dict)
    assert (report["exit_code"], report["imported"]["new"], report["exported"]) == (0, 1, {"archive": {"delivered": 1}})

    listing = run_json("documents", "--direction", "purchase", plugins=cli_plugins)
    assert len(listing) == 25 and all(d["deliveries"] == {"archive": "delivered"} for d in listing)
    code, output = run("documents", "show", listing[0]["id"], plugins=cli_plugins)
    assert code == 0 and "archive: delivered" in output
    assert run("documents", "open", listing[0]["id"], "--print-path", plugins=cli_plugins)[1].strip().endswith(".pdf")

    assert run("disconnect", "archive", plugins=cli_plugins)[0] == 0
    assert [a["name"] for a in run_json("accounts", plugins=cli_plugins)] == ["memory"]  # type: ignore[attr-defined]


def test_fatal_errors_exit_2_with_a_helpful_message(cli_plugins: Plugins, invoicesync_home: Path) -> None:
    code, output = run("connect", "nosuch", plugins=cli_plugins)
    assert code == 2 and "no plugin called 'nosuch' is installed" in output
    code, output = run("sync", plugins=cli_plugins)
    assert code == 2 and "no accounts to sync" in output
    code, output = run("connect", "localfs", "--root", "x", "--tempalte", "{number}.{ext}", plugins=cli_plugins)
    # A typo is refused, naming the valid settings and export options, and nothing is stored.
    assert code == 2 and "unknown setting tempalte" in output and "template" in output and "since" in output
    assert run_json("accounts", plugins=cli_plugins) == []
    code, output = run("connect", "localfs", "--root", "x", "--relogin", plugins=cli_plugins)
    assert code == 2 and "no account called 'localfs'" in output  # --relogin never makes a new account
    assert run("connect", "localfs", "--root", "x", plugins=cli_plugins)[0] == 0
    code, output = run("connect", "localfs", "--relogin", plugins=cli_plugins)
    assert code == 0  # a connect option is handed to the plugin's login, not stored
    assert "relogin" not in json.dumps(run_json("accounts", plugins=cli_plugins))
    code, output = run("connect", "localfs", "--name", "bad", "--template", "{nope}", plugins=cli_plugins)
    assert (code == 2 and "invalid settings" in output) or "unknown template field" in output


def test_export_options_at_connect_in_accounts_and_deleted_documents(
        cli_plugins: Plugins, memory_plugins: tuple[Plugins, MemorySource, MemoryTarget], invoicesync_home: Path,
        tmp_path: Path) -> None:
    _, source, _target = memory_plugins
    assert run("connect", "memory", plugins=cli_plugins)[0] == 0
    code, output = run("connect", "localfs", "--name", "archive", "--root", str(tmp_path / "out"),
                       "--files", "pdf,attachments", "--since", "2025-01-01", "--directions", "purchase",
                       plugins=cli_plugins)
    assert code == 0, output
    archive = next(a for a in run_json("accounts", plugins=cli_plugins) if a["name"] == "archive")  # type: ignore[attr-defined]
    assert archive["export_options"] == {"files": ["pdf", "attachments"], "directions": ["purchase"],
                                         "since": "2025-01-01"}
    assert "exports only: files=pdf,attachments" in run("accounts", plugins=cli_plugins)[1]
    code, output = run("connect", "localfs", "--name", "bad", "--root", "x", "--since", "yesterday",
                       plugins=cli_plugins)
    assert code == 2 and "since" in output

    assert run("sync", plugins=cli_plugins)[0] == 0
    source.touch("m3", deleted=True)
    code, output = run("sync", plugins=cli_plugins)
    assert code == 0 and "1 deleted" in output  # the memory source's import count
    deleted = run_json("documents", "--deleted", plugins=cli_plugins)
    assert [d["id"] for d in deleted] == ["memory:memory:c1:m3"]  # type: ignore[index]
    assert deleted[0]["deliveries"] == {"archive": "skipped"}  # type: ignore[index]  # localfs keeps it by default
    assert len(run_json("documents", plugins=cli_plugins)) == 24  # type: ignore[arg-type]
