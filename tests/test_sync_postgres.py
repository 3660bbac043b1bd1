"""``invoicesync sync`` end to end on a PostgreSQL state: chosen by ``state_url`` or
``INVOICESYNC_STATE_URL``, one runner per state (the second exits 75), and real runner processes
that both get in still pushing each document once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from invoicesync.cli import cli
from invoicesync.pipeline import EXIT_BUSY, EXIT_OK
from invoicesync.plugins import Plugins
from invoicesync.state._postgres import PostgresStore
from invoicesync.testing import MemorySource, MemoryTarget

DRIVER = Path(__file__).with_name("runner_driver.py")
HOLDER = """
import sys, time
from invoicesync.state import RunnerInfo
from invoicesync.state._postgres import PostgresStore
store = PostgresStore(sys.argv[1])  # kept: its pool is closed by the exit, not by the garbage collector
hold = store.runner_lock(RunnerInfo.current("holder-for-test"))
hold.__enter__()
print("locked", flush=True)
time.sleep(600)
"""


def run(*args: str, plugins: Plugins | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), obj=plugins)
    return result.exit_code, result.output


def test_sync_keeps_its_state_in_postgres_when_the_config_says_so(
        cli_plugins: Plugins, memory_plugins: tuple[Plugins, MemorySource, MemoryTarget],
        invoicesync_home: Path, postgres_url: str, tmp_path: Path) -> None:
    (tmp_path / "invoicesync.toml").write_text(f'state_url = "{postgres_url}"\n')  # ./invoicesync.toml
    assert run("connect", "memory", plugins=cli_plugins)[0] == 0
    assert run("connect", "memtarget", plugins=cli_plugins)[0] == 0
    result = CliRunner().invoke(cli, ["sync", "--json"], obj=cli_plugins)
    assert result.exit_code == EXIT_OK, result.output
    assert json.loads(result.stdout)["exported"]["memtarget"]["delivered"] == 25
    assert not (invoicesync_home / "state.db").exists()

    store = PostgresStore(postgres_url)
    try:
        assert [a.name for a in store.list_accounts()] == ["memory", "memtarget"]
        assert len(list(store.undelivered("other"))) == 25 and list(store.undelivered("memtarget")) == []
        assert store._all("SELECT * FROM claims") == []
    finally:
        store.close()
    assert run("sync", plugins=cli_plugins)[0] == EXIT_OK
    assert memory_plugins[2].writes == 25  # the ledger in PostgreSQL held
    assert "INV-0001" in run("documents", plugins=cli_plugins)[1]


def test_a_second_runner_on_the_same_postgres_state_exits_75_until_the_first_dies(
        cli_plugins: Plugins, memory_plugins: tuple[Plugins, MemorySource, MemoryTarget],
        invoicesync_home: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVOICESYNC_STATE_URL", postgres_url)
    assert run("connect", "memory", plugins=cli_plugins)[0] == 0
    assert run("connect", "memtarget", plugins=cli_plugins)[0] == 0
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, postgres_url], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        code, output = run("sync", plugins=cli_plugins)
        assert code == EXIT_BUSY == 75, output
        assert "another sync is running on this PostgreSQL state: " in output
        assert f"pid {holder.pid}" in output and memory_plugins[2].writes == 0
        holder.kill()
        holder.wait()
        code, output = run("sync", "--wait", "30", plugins=cli_plugins)
        assert code == EXIT_OK, output
        assert memory_plugins[2].writes == 25
    finally:
        holder.kill()
        holder.wait()


def test_two_runners_that_both_get_in_push_each_document_once_through_postgres_claims(
        tmp_path: Path, postgres_url: str) -> None:
    home, log = tmp_path / "home", tmp_path / "writes.log"
    env = {**os.environ, "INVOICESYNC_STATE_URL": postgres_url}

    def driver(*args: str, options: tuple[str, ...] = ()) -> list[str]:
        return [sys.executable, str(DRIVER), str(home), str(log), *options, "--", *args]

    subprocess.run(driver("setup"), check=True, env=env)
    # No runner lock and no look-up before writing: only the claims keep a document from a second push.
    options = ("--count", "16", "--delay", "0.1", "--no-lookup", "--no-lock")
    runs = [subprocess.Popen(driver("sync", options=options), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env) for _ in range(2)]
    outputs = [r.communicate(timeout=120) for r in runs]
    assert all(r.returncode in (0, 1) for r in runs), outputs
    written = Counter(line.split()[0] for line in log.read_text().splitlines())
    assert set(written.values()) == {1}, (written, outputs)
    final = subprocess.run(driver("sync", options=("--count", "16", "--no-lookup")), capture_output=True,
                           text=True, timeout=120, env=env)
    assert final.returncode == 0, final.stdout + final.stderr
    written = Counter(line.split()[0] for line in log.read_text().splitlines())
    assert set(written.values()) == {1} and len(written) == 16
    assert not (home / "state.db").exists()


def test_a_server_gone_mid_command_is_one_line_and_exit_2(
        cli_plugins: Plugins, invoicesync_home: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg

    monkeypatch.setenv("INVOICESYNC_STATE_URL", postgres_url)
    assert run("connect", "memory", plugins=cli_plugins)[0] == 0

    def gone(*args: object, **kwargs: object) -> None:
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(PostgresStore, "_all", gone)
    result = CliRunner().invoke(cli, ["documents"], obj=cli_plugins)
    assert result.exit_code == 2
    assert result.output.startswith("Error: the PostgreSQL state failed (server closed the connection unexpectedly)")
    assert len(result.output.strip().splitlines()) == 1 and "internal error" not in result.output
