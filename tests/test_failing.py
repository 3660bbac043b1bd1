"""Failures that persist are loud: the sync summary and ``documents --status failed`` say for how
long a document has been failing, and the listing does not run a query per document."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from invoicesync.cli import cli
from invoicesync.models import Delivery, DeliveryStatus
from invoicesync.plugins import Plugins
from invoicesync.state._sql import SqlStore
from invoicesync.testing import MemorySource, MemoryTarget


def run(*args: str, plugins: Plugins | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), obj=plugins)
    return result.exit_code, result.output


def test_a_document_failing_run_after_run_is_reported_as_such(
        cli_plugins: Plugins, memory_plugins: tuple[Plugins, MemorySource, MemoryTarget],
        invoicesync_home: Path) -> None:
    _, _source, target = memory_plugins
    assert run("connect", "memory", plugins=cli_plugins)[0] == 0
    assert run("connect", "memtarget", plugins=cli_plugins)[0] == 0
    target.fail_ids = {"m1"}
    code, output = run("sync", plugins=cli_plugins)
    assert code == 1 and "still failing" not in output  # once is not yet "run after run"
    run("sync", plugins=cli_plugins)
    code, output = run("sync", plugins=cli_plugins)
    assert code == 1
    assert "still failing, run after run (1)" in output
    assert "failing for 3 runs since" in output

    report = json.loads(CliRunner().invoke(cli, ["sync", "--json"], obj=cli_plugins).stdout)
    assert [(f["where"], f["runs"]) for f in report["failing"]] == [("memtarget", 4)]

    code, output = run("documents", "--status", "failed", plugins=cli_plugins)
    assert code == 0 and "memtarget:failed" in output and "failing for 4 runs since" in output
    listing = json.loads(CliRunner().invoke(cli, ["documents", "--status", "failed", "--json"], obj=cli_plugins).stdout)
    assert len(listing) == 1 and listing[0]["failing"]["memtarget"]["runs"] == 4
    assert listing[0]["failing"]["memtarget"]["attempts"] >= 4

    target.fail_ids = set()  # fixed: the streak ends
    assert run("sync", plugins=cli_plugins)[0] == 0
    assert run("documents", "--status", "failed", plugins=cli_plugins)[1].startswith("No documents with status failed")


def test_the_status_filter_does_not_query_per_document(
        cli_plugins: Plugins, memory_plugins: tuple[Plugins, MemorySource, MemoryTarget],
        invoicesync_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run("connect", "memory", plugins=cli_plugins)[0] == 0
    assert run("connect", "memtarget", plugins=cli_plugins)[0] == 0
    memory_plugins[2].fail_ids = {"m3", "m7"}
    assert run("sync", plugins=cli_plugins)[0] == 1

    statements: list[str] = []
    original = sqlite3.connect

    def counting(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        db = original(*args, **kwargs)
        db.set_trace_callback(statements.append)
        return db

    monkeypatch.setattr(sqlite3, "connect", counting)
    result = CliRunner().invoke(cli, ["documents", "--status", "failed", "--json"], obj=cli_plugins)
    failed = json.loads(result.stdout)
    assert sorted(d["number"] for d in failed) == ["INV-0003", "INV-0007"]
    reads = [s for s in statements if "deliveries" in s and s.lstrip().upper().startswith("SELECT")]
    # A page of up to 100 documents, its deliveries, then the empty page that ends the listing.
    assert len(reads) <= 3, f"{len(reads)} queries for 25 documents"


def test_the_failing_streak_counts_runs_not_in_run_retries(open_store: Callable[..., SqlStore]) -> None:
    def failed(store: SqlStore, status: DeliveryStatus = DeliveryStatus.FAILED) -> None:
        store.record_delivery(Delivery(document_id="d1", target="t", version="v1", status=status))

    store = open_store()
    for _ in range(3):  # one run: an intent, then a failure, retried twice
        failed(store, DeliveryStatus.PENDING)
        failed(store)
    store.close()
    store = open_store()  # the next run
    failed(store, DeliveryStatus.PENDING)
    failed(store)
    [failure] = store.persistent_failures()
    assert (failure.where, failure.document, failure.since.runs, failure.since.attempts) == ("t", "d1", 2, 4)
    failed(store, DeliveryStatus.DELIVERED)
    assert store.persistent_failures() == []
    store.close()


def test_migration_keeps_failures_and_dates_them(open_store: Callable[..., SqlStore]) -> None:
    old = open_store(target_version=2)
    old._exec("INSERT INTO deliveries (document_id, target, version, status, message, at) "
              "VALUES ('d1', 't', 'v1', 'failed', 'boom', '2026-11-28T10:00:00+00:00')")
    old._exec("INSERT INTO failures VALUES ('a', 'c', 's1', ?, 'bad', 3, '2026-11-29T10:00:00+00:00')",
              ('{"source_id": "s1"}',))
    old.close()
    new = open_store()
    found: dict[str, Any] = {f.where: f for f in new.persistent_failures(min_runs=1)}
    assert found["t"].since.first_failed_at.isoformat() == "2026-11-28T10:00:00+00:00"
    assert found["a/c"].since.runs == 3 and found["a/c"].document == "s1"
    new.close()
