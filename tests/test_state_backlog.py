"""The backlog query (``undelivered``), run by every run once per target: it must find what is due
without reading the documents' bodies (a re-sync with nothing to do would grow with the library), in
the same order and with the same meaning, and an old state gains its indexes by migration."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from invoicesync import Company, Delivery, DeliveryStatus, Direction, Document
from invoicesync.errors import ConfigError
from invoicesync.state import SCHEMA_VERSION
from invoicesync.state._postgres import PostgresStore, _pg
from invoicesync.state._sql import SqlStore

OpenStore = Callable[..., SqlStore]


def doc(n: int) -> Document:
    return Document(id=Document.make_id("s", "a", "c", str(n)), source="s", account="a",
                    company=Company(id="c", name="C"), source_id=str(n), direction=Direction.SALES, number=f"N{n}")


def deliver(store: SqlStore, d: Document, status: DeliveryStatus = DeliveryStatus.DELIVERED,
            target: str = "t", options: str | None = "opts") -> None:
    store.record_delivery(Delivery(document_id=d.id, target=target, version=d.version, status=status,
                                   export_options=options))


def backlog_statements(store: SqlStore, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[Any, ...]]]:
    """The SELECTs ``undelivered`` runs over a library where nothing is due at ``t``."""
    for n in range(40):
        store.upsert_document(doc(n))
        deliver(store, doc(n))
    store.mark_deleted(doc(0).id)  # a deletion this target has applied (settled): not due either
    deliver(store, store.get_document(doc(0).id))  # type: ignore[arg-type]
    seen: list[tuple[str, tuple[Any, ...]]] = []
    run = store._all

    def recording(sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        seen.append((sql, params))
        return run(sql, params)

    monkeypatch.setattr(store, "_all", recording)
    assert list(store.undelivered("t", export_options="opts")) == []
    monkeypatch.undo()
    assert seen
    return seen


def test_the_sqlite_backlog_reads_only_narrow_indexes_when_nothing_is_due(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from invoicesync.state import SqliteStore

    store = SqliteStore(tmp_path / "state.db")
    try:
        for sql, params in backlog_statements(store, monkeypatch):
            plan = [row["detail"] for row in store._all("EXPLAIN QUERY PLAN " + sql, params)]
            # Every step over documents or the ledger is a covering index: no table row is read, and
            # a documents row is where a body is (SCAN d / SEARCH d USING INTEGER PRIMARY KEY).
            steps = [step for step in plan if step.startswith(("SCAN", "SEARCH"))]
            assert steps and all("COVERING INDEX" in step for step in steps), plan
    finally:
        store.close()


def test_the_postgres_backlog_is_an_index_only_scan(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store = PostgresStore(postgres_url)
    try:
        statements = backlog_statements(store, monkeypatch)
        with store._pool.connection() as db:
            # as autovacuum leaves a settled library: the visibility map lets an index answer alone
            db.execute("VACUUM ANALYZE documents")
            db.execute("VACUUM ANALYZE deliveries")
        with store._pool.connection() as db, db.transaction():
            # A 40-row table is read whole at any rate; what is asked is whether an index can answer alone.
            db.execute("SET LOCAL enable_seqscan = off")
            db.execute("SET LOCAL enable_bitmapscan = off")
            for sql, params in statements:
                plan = "\n".join(row["QUERY PLAN"] for row in db.execute("EXPLAIN " + _pg(sql), params))
                assert "Index Only Scan using documents_backlog" in plan, plan
                assert "Index Only Scan using deliveries_backlog" in plan, plan
    finally:
        store.close()


def test_the_backlog_keeps_rowid_order_across_passes_and_pages(open_store: OpenStore) -> None:
    store = open_store()
    docs = [doc(n) for n in range(23)]
    for d in docs:
        store.upsert_document(d)
    for d in docs[::3]:
        deliver(store, d)
    deliver(store, docs[1], DeliveryStatus.FAILED)
    deliver(store, docs[2], options="other")  # settled under other export options: offered again
    due = [d.id for i, d in enumerate(docs) if i % 3 or i == 1]
    # Small passes and pages, so the 15 due documents span several of each.
    store.BACKLOG_PASS, store.BACKLOG_PAGE = 4, 3  # type: ignore[misc]
    assert [d.id for d in store.undelivered("t", export_options="opts")] == due
    store.BACKLOG_PASS, store.BACKLOG_PAGE = 1, 1  # type: ignore[misc]
    assert [d.id for d in store.undelivered("t", export_options="opts")] == due


def test_a_document_delivered_while_the_backlog_is_read_is_not_offered_and_one_stored_is(
        open_store: OpenStore) -> None:
    store = open_store()
    docs = [doc(n) for n in range(6)]
    for d in docs[:5]:
        store.upsert_document(d)
    store.BACKLOG_PASS, store.BACKLOG_PAGE = 10, 2  # type: ignore[misc]
    backlog = store.undelivered("t")
    assert next(backlog).id == docs[0].id
    deliver(store, docs[3])  # found by the pass already, its page not read yet
    store.upsert_document(docs[5])  # stored after the pass: the next pass finds it
    assert [d.id for d in backlog] == [docs[1].id, docs[2].id, docs[4].id, docs[5].id]


def test_an_old_state_gains_the_backlog_indexes_and_a_newer_one_is_refused(open_store: OpenStore) -> None:
    old = open_store(target_version=SCHEMA_VERSION - 1)
    old.upsert_document(doc(1))
    old.upsert_document(doc(2))
    deliver(old, doc(1))
    old.close()
    new = open_store()
    assert new.schema_version == SCHEMA_VERSION
    if isinstance(new, PostgresStore):
        names = {r["indexname"] for r in new._all("SELECT indexname FROM pg_indexes "
                                                  "WHERE schemaname = current_schema()")}
        new._exec("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    else:
        names = {r["name"] for r in new._all("SELECT name FROM sqlite_master WHERE type = 'index'")}
        new._exec(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    assert {"documents_backlog", "deliveries_backlog"} <= names
    assert [d.id for d in new.undelivered("t")] == [doc(2).id]
    with pytest.raises(ConfigError, match="newer than this invoicesync knows"):
        open_store()
