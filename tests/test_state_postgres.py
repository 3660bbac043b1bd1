"""The PostgreSQL state: one logical schema with SQLite, safe under threads and under several runners
(row locks, one-statement upserts, an advisory runner lock that dies with its holder's connection)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from invoicesync import Company, Delivery, DeliveryStatus, Direction, Document
from invoicesync.errors import ConfigError
from invoicesync.state import MIGRATIONS, RunnerBusy, RunnerInfo, SqliteStore, open_state
from invoicesync.state._postgres import PG_MIGRATIONS, PostgresStore
from invoicesync.state._sql import SqlStore

#: SQLite's declared types and their PostgreSQL counterparts in the logical schema.
TYPES = {"TEXT": "text", "INTEGER": "integer", "REAL": "double precision"}
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


def sqlite_schema(store: SqliteStore) -> dict[str, dict[str, tuple[str, bool]]]:
    tables = [r["name"] for r in store._all("SELECT name FROM sqlite_master WHERE type = 'table' "
                                            "AND name NOT LIKE 'sqlite_%'")]
    return {table: {c["name"]: (TYPES[c["type"]], bool(c["notnull"] or c["pk"]))
                    for c in store._all(f"PRAGMA table_info({table})")} for table in tables}


def postgres_schema(store: PostgresStore) -> dict[str, dict[str, tuple[str, bool]]]:
    schema: dict[str, dict[str, tuple[str, bool]]] = {}
    for c in store._all("SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns "
                        "WHERE table_schema = current_schema()"):
        schema.setdefault(c["table_name"], {})[c["column_name"]] = (c["data_type"], c["is_nullable"] == "NO")
    # PostgreSQL's own bookkeeping, and the identity columns standing in for SQLite's implicit rowid
    schema.pop("schema_version")
    for table in ("documents", "delivery_log"):
        if table in schema:
            assert schema[table].pop("rowid") == ("bigint", True)
    return schema


def test_each_schema_version_has_the_same_tables_and_columns_on_both_backends(
        tmp_path: Path, postgres_url: str) -> None:
    assert len(PG_MIGRATIONS) == len(MIGRATIONS), "a SQLite migration without its PostgreSQL twin (or back)"
    for version in range(1, len(MIGRATIONS) + 1):
        sqlite, postgres = SqliteStore(tmp_path / "state.db", target_version=version), \
            PostgresStore(postgres_url, target_version=version)
        try:
            assert postgres.schema_version == sqlite.schema_version == version
            assert postgres_schema(postgres) == sqlite_schema(sqlite), f"schema {version} differs"
        finally:
            sqlite.close()
            postgres.close()


def doc(n: int) -> Document:
    return Document(id=Document.make_id("s", "a", "c", str(n)), source="s", account="a",
                    company=Company(id="c", name="C"), source_id=str(n), direction=Direction.SALES, number=f"N{n}")


def test_the_store_is_safe_to_share_between_threads(open_store: Callable[..., SqlStore]) -> None:
    store = open_store()

    def work(n: int) -> None:
        store.upsert_document(doc(n))
        store.record_delivery(Delivery(document_id=doc(n).id, target="t", version=doc(n).version,
                                       status=DeliveryStatus.DELIVERED))
        store.kv("acct").update("count", lambda value: value + 1, 0)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(80)))
    assert store.kv("acct").get("count") == 80
    assert list(store.undelivered("t")) == [] and len(list(store.undelivered("other"))) == 80


def test_two_runners_agree_on_new_documents_and_on_kv_updates(postgres_url: str) -> None:
    stores = [PostgresStore(postgres_url), PostgresStore(postgres_url)]
    outcomes: list[str] = []
    start = threading.Barrier(8)

    def work(index: int) -> None:
        store = stores[index % 2]
        start.wait()
        for n in range(30):
            outcomes.append(store.upsert_document(doc(n)))
            store.kv("acct").update("count", lambda value: value + 1, 0)

    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(work, range(8)))
        # each document is new exactly once, however the eight writers met
        assert outcomes.count("new") == 30 and outcomes.count("unchanged") == 7 * 30
        assert stores[0].kv("acct").get("count") == 8 * 30
    finally:
        for store in stores:
            store.close()


def test_runners_opening_a_new_state_at_once_migrate_it_once(postgres_url: str) -> None:
    start = threading.Barrier(4)

    def open_at_once(_: int) -> int:
        start.wait()
        store = PostgresStore(postgres_url)
        store.close()
        return store.schema_version

    with ThreadPoolExecutor(4) as pool:
        assert set(pool.map(open_at_once, range(4))) == {len(PG_MIGRATIONS)}
    store = PostgresStore(postgres_url)
    try:
        assert store._all("SELECT version FROM schema_version") == [{"version": len(PG_MIGRATIONS)}]
    finally:
        store.close()


def test_a_kv_update_that_raises_leaves_nothing_behind(postgres_url: str) -> None:
    store = PostgresStore(postgres_url)
    try:
        def boom(value: Any) -> Any:
            raise RuntimeError("no")

        with pytest.raises(RuntimeError):
            store.kv("acct").update("key", boom, {"a": 1})
        assert store.kv("acct").get("key", "missing") == "missing"
        assert store.kv("acct").update("key", lambda value: {**value, "b": 2}, {"a": 1}) == {"a": 1, "b": 2}
    finally:
        store.close()


def test_the_runner_lock_names_its_holder_and_frees_itself_when_the_holder_is_killed(
        postgres_url: str, tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, postgres_url], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        store = PostgresStore(postgres_url)
        with pytest.raises(RunnerBusy) as busy, store.runner_lock(RunnerInfo.current("second")):
            pass
        assert busy.value.holder is not None and busy.value.holder.pid == holder.pid
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        # the server notices the dead connection: the lock is free without anyone cleaning up
        with store.runner_lock(RunnerInfo.current("second"), wait=10):
            pass
        store.close()
    finally:
        holder.kill()
        holder.wait()


def test_the_runner_lock_is_per_state(postgres_url: str, tmp_path: Path) -> None:
    import psycopg

    base = postgres_url.partition("?")[0]
    other_schema = "test_other_" + os.urandom(6).hex()
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{other_schema}"')
        try:
            one, other = PostgresStore(postgres_url), PostgresStore(f"{base}?options=-csearch_path%3D{other_schema}")
            with one.runner_lock(RunnerInfo.current("one")), other.runner_lock(RunnerInfo.current("other")), \
                    pytest.raises(RunnerBusy), one.runner_lock(RunnerInfo.current("again")):
                pass
            one.close()
            other.close()
        finally:
            admin.execute(f'DROP SCHEMA "{other_schema}" CASCADE')


def test_an_unreachable_state_is_one_line_without_the_password(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        open_state(tmp_path, "postgresql://user:hunter2@127.0.0.1:1/nowhere")
    assert "hunter2" not in str(error.value) and "user:***@127.0.0.1:1" in str(error.value)
    assert "\n" not in str(error.value)
    with pytest.raises(ConfigError, match="not a postgresql:// URL"):
        open_state(tmp_path, "mysql://somewhere/db")


def test_a_state_from_a_newer_invoicesync_is_refused(postgres_url: str) -> None:
    store = PostgresStore(postgres_url)
    store._exec("UPDATE schema_version SET version = 99")
    store.close()
    with pytest.raises(ConfigError, match="has schema 99, newer than this invoicesync knows"):
        PostgresStore(postgres_url)
