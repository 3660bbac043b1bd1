"""``invoicesync state migrate --to postgresql://…``: a SQLite home's state, copied whole into an
empty PostgreSQL state, which then carries on where the home left off; a non-empty target is refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from invoicesync.cli import cli
from invoicesync.models import DocumentRef
from invoicesync.pipeline import EXIT_FATAL, EXIT_OK, EXIT_PARTIAL
from invoicesync.plugins import Plugins
from invoicesync.state import DocumentFilter, SqliteStore, WebhookRecord
from invoicesync.state._postgres import PostgresStore
from invoicesync.state._sql import STATE_TABLES
from invoicesync.testing import MemorySource, MemoryTarget


def run(*args: str, plugins: Plugins | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), obj=plugins)
    return result.exit_code, result.output


def table(store: SqliteStore | PostgresStore, name: str) -> list[dict[str, Any]]:
    order = "rowid" if name in ("documents", "delivery_log") else "1, 2"
    return [{k: row[k] for k in row.keys() if k != "rowid"}  # noqa: SIM118 (a sqlite3.Row iterates values)
            for row in store._all(f"SELECT * FROM {name} ORDER BY {order}")]


def test_migrate_copies_a_home_into_postgres_which_then_carries_on(
        cli_plugins: Plugins, memory_plugins: tuple[Plugins, MemorySource, MemoryTarget],
        invoicesync_home: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _, _source, target = memory_plugins
    assert run("connect", "memory", plugins=cli_plugins)[0] == 0
    assert run("connect", "memtarget", plugins=cli_plugins)[0] == 0
    target.fail_ids = {"m4"}
    assert run("sync", plugins=cli_plugins)[0] == EXIT_PARTIAL  # m4 fails two runs running
    assert run("sync", plugins=cli_plugins)[0] == EXIT_PARTIAL
    home_state = SqliteStore(invoicesync_home / "state.db")
    home_state.record_failure("memory", "c1", DocumentRef(source_id="m7"), "HTTP 500")
    home_state.kv("memtarget").set("folders", {"2026": "id-1"})
    assert home_state.claim("some-document", "memtarget", "a-run", lease=600)
    home_state.set_schedule("memory", "every 15m")  # a schedule set on the dashboard moves too
    home_state.save_webhook(WebhookRecord("memory", "c1", "https://books.example.com/webhooks/memory/c1", ["9001"],
                                          ["webhook_secret_c1_0"]), "2026-01-01T00:00:00+00:00")
    assert home_state.first_sighting("memory", "c1:abc", 600)  # seen deliveries live only for minutes
    home_state.close()

    code, output = run("state", "migrate", "--to", postgres_url, plugins=cli_plugins)
    assert code == EXIT_OK, output
    assert "documents: 25" in output and "deliveries: 25" in output and "runs: 2" in output

    home_state, postgres = SqliteStore(invoicesync_home / "state.db"), PostgresStore(postgres_url)
    try:
        for name in STATE_TABLES:
            assert table(postgres, name) == table(home_state, name), name
            assert table(postgres, name), f"nothing to compare in {name}"
        assert postgres._all("SELECT * FROM claims") == []  # a claim lives only as long as its run
        assert postgres._all("SELECT * FROM webhook_seen") == []
        assert postgres.webhooks("memory")[0].ids == ["9001"]
    finally:
        home_state.close()
        postgres.close()

    monkeypatch.setenv("INVOICESYNC_STATE_URL", postgres_url)
    writes = target.writes
    assert run("sync", plugins=cli_plugins)[0] == EXIT_PARTIAL  # m4 still fails: its streak goes on in PostgreSQL
    assert target.writes == writes  # nothing delivered before was delivered again
    listing = json.loads(CliRunner().invoke(cli, ["documents", "--status", "failed", "--json"], obj=cli_plugins).stdout)
    assert [d["failing"]["memtarget"]["runs"] for d in listing] == [3]
    target.fail_ids = set()
    assert run("sync", plugins=cli_plugins)[0] == EXIT_OK and target.writes == writes + 1
    postgres = PostgresStore(postgres_url)
    try:
        assert [r.id for r in postgres.runs()] == [4, 3, 2, 1]  # numbered on after the copied runs
        m4 = next(d.id for d in postgres.find_documents(DocumentFilter()) if d.source_id == "m4")
        assert [e.status for e in postgres.delivery_log(m4)] == ["failed"] * 3 + ["delivered"]
    finally:
        postgres.close()


def test_migrate_refuses_a_target_that_holds_state_and_a_home_without_one(
        cli_plugins: Plugins, invoicesync_home: Path, postgres_url: str, tmp_path: Path) -> None:
    code, output = run("state", "migrate", "--to", postgres_url, plugins=cli_plugins)
    assert code == EXIT_FATAL and "state.db does not exist" in output

    assert run("connect", "memory", plugins=cli_plugins)[0] == 0
    assert run("state", "migrate", "--to", postgres_url, plugins=cli_plugins)[0] == EXIT_OK
    (tmp_path / "extra").mkdir()
    code, output = run("--home", str(tmp_path / "extra"), "connect", "memtarget", plugins=cli_plugins)
    assert code == 0, output
    code, output = run("--home", str(tmp_path / "extra"), "state", "migrate", "--to", postgres_url, plugins=cli_plugins)
    assert code == EXIT_FATAL and "is not empty (it has accounts)" in output
    postgres = PostgresStore(postgres_url)
    try:
        assert [a.name for a in postgres.list_accounts()] == ["memory"]  # the refused copy added nothing
    finally:
        postgres.close()
    code, output = run("state", "migrate", "--to", "sqlite:///elsewhere.db", plugins=cli_plugins)
    assert code != EXIT_OK and "not a postgresql:// URL" in output
