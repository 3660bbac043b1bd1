"""Migration 6: runs are kept for History, every settled delivery outcome for a document's history,
and the library is read a page at a time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from invoicesync.models import Company, Delivery, DeliveryStatus, Direction, Document, Party
from invoicesync.pipeline import run_sync
from invoicesync.state import SCHEMA_VERSION, DocumentFilter, RunnerInfo
from invoicesync.state._sql import SqlStore
from invoicesync.workspace import Workspace


def test_the_delivery_log_keeps_outcomes_in_order_but_not_intents(open_store: Callable[..., SqlStore]) -> None:
    store = open_store()
    for status, message in ((DeliveryStatus.PENDING, None), (DeliveryStatus.FAILED, "503 from the target"),
                            (DeliveryStatus.PENDING, None), (DeliveryStatus.DELIVERED, None),
                            (DeliveryStatus.PLANNED, None)):
        store.record_delivery(Delivery(document_id="d1", target="t", version="v1", status=status, message=message,
                                       target_path="a/b.pdf"))
    log = store.delivery_log("d1")
    assert [(e.status, e.message) for e in log] == [("failed", "503 from the target"), ("delivered", None)]
    assert store.delivery_log("other") == []


def test_a_state_at_schema_5_gains_the_runs_and_the_log(open_store: Callable[..., SqlStore]) -> None:
    open_store(target_version=5).close()
    store = open_store()
    assert store.schema_version == SCHEMA_VERSION and store.runs() == []
    run_id = store.record_run(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 0, 1, tzinfo=UTC), ["a"], 1,
                              {"problems": [{"where": "a", "document": None, "message": "m"}]})
    assert store.run(run_id) is not None and store.runs()[0].report["problems"][0]["message"] == "m"


def test_runs_are_recorded_by_the_pipeline_but_not_dry_or_busy_ones(memory_workspace: Workspace) -> None:
    assert run_sync(memory_workspace).exit_code == 0
    run_sync(memory_workspace, dry_run=True)
    with memory_workspace.state.runner_lock(RunnerInfo.current()):
        assert run_sync(memory_workspace).busy
    runs = memory_workspace.state.runs()
    assert len(runs) == 1 and runs[0].report["imported"] == {"new": 25} and runs[0].exit_code == 0


def test_library_pages_cover_the_library_once_newest_first(memory_workspace: Workspace) -> None:
    run_sync(memory_workspace)
    seen, before = [], None
    while True:
        page = memory_workspace.state.library_page(DocumentFilter(), before=before, limit=7)
        assert len(page.entries) <= 7 and page.keys == sorted(page.keys, reverse=True)
        seen += page.keys
        if page.next_before is None:
            break
        before = page.next_before
    assert len(seen) == len(set(seen)) == 25 and seen == sorted(seen, reverse=True)
    assert all(e.deliveries["memtarget"].status is DeliveryStatus.DELIVERED for e in page.entries)


def test_library_pages_find_a_document_by_number_or_counterparty(open_store: Callable[..., SqlStore]) -> None:
    store = open_store()
    for n, name in ((1, "Acme 100% NV"), (2, "Globex"), (3, "Initech")):
        store.upsert_document(Document(
            id=Document.make_id("s", "a", "c", str(n)), source="s", account="a", company=Company(id="c", name="C"),
            source_id=str(n), direction=Direction.SALES, number=f"INV-{n}", counterparty=Party(name=name)))
    numbers = {text: [e.document.number for e in store.library_page(DocumentFilter(), text=text).entries]
               for text in ("acme", "100%", "INV-2", "nobody", "_")}
    assert numbers == {"acme": ["INV-1"], "100%": ["INV-1"], "INV-2": ["INV-2"], "nobody": [], "_": []}
