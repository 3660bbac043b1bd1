"""The state store's semantics, on each backend (SQLite and PostgreSQL: the ``open_store`` fixture)."""

from __future__ import annotations

from collections.abc import Callable

from invoicesync import Account, AccountDirection, Company, Delivery, DeliveryStatus, Direction, Document
from invoicesync.state import SCHEMA_VERSION, DocumentFilter
from invoicesync.state._sql import SqlStore

OpenStore = Callable[..., SqlStore]


def doc(source_id: str, number: str = "INV-1") -> Document:
    return Document(id=Document.make_id("s", "a", "c", source_id), source="s", account="a",
                    company=Company(id="c", name="C"), source_id=source_id, direction=Direction.SALES,
                    number=number)


def columns(store: SqlStore, table: str) -> set[str]:
    if hasattr(store, "path"):  # SQLite
        return {r["name"] for r in store._all(f"PRAGMA table_info({table})")}
    return {r["column_name"] for r in store._all(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = ?", (table,))}


def test_migrates_an_old_schema_and_keeps_the_data(open_store: OpenStore) -> None:
    old = open_store(target_version=1)
    assert old.schema_version == 1
    old.save_account(Account(name="a", plugin="s", direction=AccountDirection.IMPORT,
                             companies=[Company(id="c", name="C")]))
    old.set_cursor("a", "c", "2026-01-01T00:00:00")
    # A v1 documents row, written as v1 code would have (no `deleted` column yet).
    d = doc("1")
    old._exec("INSERT INTO documents VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
              (d.id, "a", "c", "1", "sales", "invoice", "INV-1", None, d.version, d.model_dump_json(), "t", "t"))
    assert "deleted" not in columns(old, "documents")
    old.close()

    new = open_store()
    assert new.schema_version == SCHEMA_VERSION == 13
    assert new.get_account("a").companies[0].id == "c"  # type: ignore[union-attr]
    assert new.get_cursor("a", "c") == "2026-01-01T00:00:00"
    assert [x.id for x in new.find_documents(DocumentFilter())] == [d.id]
    assert new.mark_deleted(d.id) and not new.mark_deleted(d.id)
    assert list(new.find_documents(DocumentFilter())) == []
    assert new.get_document(d.id).deleted  # type: ignore[union-attr]


def test_library_deduplicates_by_id_and_version(open_store: OpenStore) -> None:
    store = open_store()
    assert store.upsert_document(doc("1")) == "new"
    assert store.upsert_document(doc("1")) == "unchanged"
    assert store.upsert_document(doc("1", number="INV-1b")) == "updated"


def test_undelivered_lists_new_changed_failed_and_pending_only(open_store: OpenStore) -> None:
    store = open_store()
    docs = [doc(str(i), number=f"N{i}") for i in range(5)]
    for d in docs:
        store.upsert_document(d)

    def record(d: Document, status: DeliveryStatus, version: str | None = None) -> None:
        store.record_delivery(Delivery(document_id=d.id, target="t", version=version or d.version, status=status))

    record(docs[0], DeliveryStatus.DELIVERED)
    record(docs[1], DeliveryStatus.SKIPPED)
    record(docs[2], DeliveryStatus.FAILED)
    record(docs[3], DeliveryStatus.DELIVERED, version="old")
    # docs[4] never delivered
    assert {d.id for d in store.undelivered("t")} == {docs[2].id, docs[3].id, docs[4].id}
    assert {d.id for d in store.undelivered("other")} == {d.id for d in docs}


def test_a_pending_record_keeps_the_earlier_target_path(open_store: OpenStore) -> None:
    store = open_store()
    d = doc("1")
    store.record_delivery(Delivery(document_id=d.id, target="t", version="v1", status=DeliveryStatus.DELIVERED,
                                   target_path="a/b.pdf", target_id="id-1"))
    store.record_delivery(Delivery(document_id=d.id, target="t", version="v2", status=DeliveryStatus.PENDING))
    pending = store.get_delivery(d.id, "t")
    assert pending is not None
    assert (pending.status, pending.target_path, pending.target_id) == (DeliveryStatus.PENDING, "a/b.pdf", "id-1")


def test_the_same_version_seen_again_keeps_the_latest_source_facts(open_store: OpenStore) -> None:
    # An edit that changed nothing booked (Billit bumps LastModified on every edit): the version is
    # the same, so targets take nothing new, but the library keeps what the source says now.
    store = open_store()
    first = doc("7")
    first.raw = {"LastModified": "2025-01-10T12:08:25"}
    assert store.upsert_document(first) == "new"
    again = doc("7")
    again.raw = {"LastModified": "2026-12-02T03:50:40.141"}
    assert again.version == first.version
    assert store.upsert_document(again) == "unchanged"
    stored = store.get_document(first.id)
    assert stored is not None and stored.raw["LastModified"] == "2026-12-02T03:50:40.141"
    assert store.upsert_document(again) == "unchanged"


def test_an_outcome_releases_its_owners_claim_with_it_and_the_push_reads_both_rows_at_once(
        open_store: OpenStore) -> None:
    store = open_store()
    d = doc("1")
    assert store.document_for_push(d.id, "t") == (None, None)
    store.upsert_document(d)
    assert store.claim(d.id, "t", "run-a", 60)
    stored, delivery = store.document_for_push(d.id, "t")
    assert stored is not None and (stored.id, stored.version, delivery) == (d.id, d.version, None)
    outcome = Delivery(document_id=d.id, target="t", version=d.version, status=DeliveryStatus.DELIVERED,
                       target_path="a/b.pdf")
    store.record_delivery(outcome, release_claim_of="run-b")  # not its claim: it stays
    assert store.claimed_elsewhere("t", [d.id]) == {d.id}
    store.record_delivery(outcome, release_claim_of="run-a")
    assert store.claimed_elsewhere("t", [d.id]) == set()
    stored, delivery = store.document_for_push(d.id, "t")
    assert stored is not None and stored.version == d.version and delivery is not None
    assert (delivery.status, delivery.target_path) == (DeliveryStatus.DELIVERED, "a/b.pdf")
    assert [e.status for e in store.delivery_log(d.id)] == ["delivered", "delivered"]  # the log's trigger ran


def test_the_push_read_leaves_out_the_document_when_the_library_holds_the_callers_version(
        open_store: OpenStore) -> None:
    # The export queues the document the import just stored: parsing the library's copy again
    # would only rebuild it. Another version (a newer import) is still read.
    store = open_store()
    d = doc("1")
    store.upsert_document(d)
    store.record_delivery(Delivery(document_id=d.id, target="t", version=d.version, status=DeliveryStatus.PENDING))
    stored, delivery = store.document_for_push(d.id, "t", have_version=d.version)
    assert stored is None and delivery is not None and delivery.version == d.version
    stored, delivery = store.document_for_push(d.id, "t", have_version="an older version")
    assert stored is not None and stored.version == d.version and delivery is not None


def test_a_transaction_groups_a_documents_writes_and_an_error_undoes_them(open_store: OpenStore) -> None:
    store = open_store()
    d = doc("1")
    intent = Delivery(document_id=d.id, target="t", version=d.version, status=DeliveryStatus.PENDING)
    with store.transaction():
        assert store.claim(d.id, "t", "run-a", 60)
        with store.transaction():  # nested: the outer one commits
            store.record_delivery(intent)
    assert store.claimed_elsewhere("t", [d.id]) == {d.id}
    assert store.get_delivery(d.id, "t") is not None
    if not hasattr(store, "path"):
        return  # PostgreSQL: each statement is its own transaction (a round trip saved nothing)
    e = doc("2")
    try:
        with store.transaction():
            assert store.claim(e.id, "t", "run-a", 60)
            store.record_delivery(intent.model_copy(update={"document_id": e.id}))
            raise RuntimeError("the intent could not be written")
    except RuntimeError:
        pass
    # Undone, the claim with the rest: nothing was pushed, and no claim outlives it.
    assert store.claimed_elsewhere("t", [e.id]) == set() and store.get_delivery(e.id, "t") is None
    with store.transaction():
        store.record_delivery(intent, release_claim_of="run-a")  # an _atomically inside one: no nested BEGIN
    assert store.claimed_elsewhere("t", [d.id]) == set()
