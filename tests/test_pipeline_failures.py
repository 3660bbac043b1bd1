"""Nothing lost: every failure after a fetch, every unusable listed item, every state failure ends
as a recorded (or cursor-holding) per-document failure, or as a clean stop — never a skip or a hang."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from invoicesync import Account, Company, Context, Document, DocumentRef, ListingError, PluginKind
from invoicesync.hookspecs import hookimpl
from invoicesync.pipeline import EXIT_FATAL, EXIT_OK, EXIT_PARTIAL, SyncReport, run_sync
from invoicesync.pipeline._export import TargetWorkers
from invoicesync.plugins import Plugins
from invoicesync.state import DocumentFilter
from invoicesync.testing import MemorySource, MemoryTarget
from invoicesync.workspace import Workspace

Setup = tuple[Plugins, MemorySource, MemoryTarget]
DISK_FULL = "database or disk is full"


class FlakySource(MemorySource):
    """A MemorySource that can list items it cannot use and fetch documents that cannot be stored."""

    def __init__(self, count: int, *, page: int) -> None:
        super().__init__(count, page=page)
        self.unusable: dict[str, str] = {}  #: source_id -> field; field "Id" means the item has no id
        self.unstorable: set[str] = set()  #: fetched with a `raw` payload that cannot be serialised

    @hookimpl
    def list_documents(self, account: Account, company: Company, cursor: str | None,
                       ctx: Context) -> Iterator[Any]:
        for item in MemorySource.list_documents(self, account, company, cursor, ctx):
            field = self.unusable.get(item.source_id) if isinstance(item, DocumentRef) else None
            if field:
                yield ListingError(source_id=None if field == "Id" else item.source_id, field=field,
                                   message="not a known value")
            else:
                yield item

    @hookimpl
    def fetch_document(self, account: Account, company: Company, ref: DocumentRef, ctx: Context) -> Document:
        document = MemorySource.fetch_document(self, account, company, ref, ctx)
        if ref.source_id in self.unstorable:
            document.raw = {"payload": object()}
        return document


@pytest.fixture
def flaky(workspace_factory: Any) -> tuple[Workspace, FlakySource, MemoryTarget]:
    from invoicesync.accounts import connect
    from invoicesync.context import NonInteractiveUI

    source, target = FlakySource(25, page=7), MemoryTarget()
    plugins = Plugins.from_objects({"memory": (PluginKind.SOURCE, source), "memtarget": (PluginKind.TARGET, target)})
    workspace = workspace_factory(plugins=plugins)
    connect(workspace, "memory", ui=NonInteractiveUI())
    connect(workspace, "memtarget", ui=NonInteractiveUI())
    return workspace, source, target


def cursor_at(source: MemorySource, index: int) -> str:
    return source.records[index].modified_at.isoformat()


def failure_keys(workspace: Workspace) -> list[tuple[str, str, str | None]]:
    return [(f.ref.source_id, f.kind, f.field) for f in workspace.state.failures("memory", "c1")]


@pytest.mark.parametrize("how", ["locked", "raw", "deliver"])
def test_a_failure_after_the_fetch_is_a_recorded_failure_retried_next_run(
        flaky: tuple[Workspace, FlakySource, MemoryTarget], monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    workspace, source, target = flaky
    store_document = workspace.state.upsert_document
    offer = TargetWorkers.offer

    def locked_once(document: Document) -> Any:
        if document.source_id == "m4" and not failed:
            failed.append(document.source_id)
            raise sqlite3.OperationalError("database is locked")
        return store_document(document)

    def deliver_fails(self: TargetWorkers, document: Document) -> None:
        # Only the import's hand-over (fetch threads), not the backlog feeder.
        if document.source_id == "m4" and threading.current_thread().name.startswith("fetch-"):
            raise RuntimeError("queue broke")
        offer(self, document)

    failed: list[str] = []
    if how == "locked":
        monkeypatch.setattr(workspace.state, "upsert_document", locked_once)
    elif how == "raw":
        source.unstorable = {"m4"}
    else:
        monkeypatch.setattr(TargetWorkers, "offer", deliver_fails)

    report = run_sync(workspace)
    assert report.exit_code == EXIT_PARTIAL, report.as_dict()
    assert report.imported["failed"] == 1 and report.imported["new"] == 24
    assert [p.document for p in report.problems] == ["m4"]
    assert failure_keys(workspace) == [("m4", "fetch", None)]

    source.unstorable = set()
    monkeypatch.setattr(TargetWorkers, "offer", offer)
    again = run_sync(workspace)
    assert again.exit_code == EXIT_OK, again.as_dict()
    assert failure_keys(workspace) == []
    assert len(target.stored) == 25 and target.writes == 25


def test_when_not_even_the_failure_can_be_recorded_the_cursor_stays_before_the_item(
        flaky: tuple[Workspace, FlakySource, MemoryTarget], monkeypatch: pytest.MonkeyPatch) -> None:
    workspace, source, target = flaky
    store_document = workspace.state.upsert_document

    def store(document: Document) -> Any:
        if document.source_id == "m10":
            raise sqlite3.OperationalError("database is locked")
        return store_document(document)

    def record_failure(*args: object) -> None:
        raise sqlite3.OperationalError("database is locked")

    with monkeypatch.context() as patch:
        patch.setattr(workspace.state, "upsert_document", store)
        patch.setattr(workspace.state, "record_failure", record_failure)
        report = run_sync(workspace)
    assert report.exit_code == EXIT_PARTIAL
    assert report.imported["new"] == 24  # the items after it still went through
    # Checkpoints come after m6, m13, m20 and m24: only the one before m10 may be saved.
    assert workspace.state.get_cursor("memory", "c1") == cursor_at(source, 6)

    again = run_sync(workspace)  # no --full: m10 is listed again because the cursor waited for it
    assert again.exit_code == EXIT_OK and again.imported["new"] == 1
    assert len(target.stored) == 25
    assert workspace.state.get_cursor("memory", "c1") == cursor_at(source, 24)


def test_an_unusable_listed_item_holds_the_cursor_and_imports_once_the_source_fixes_it(
        flaky: tuple[Workspace, FlakySource, MemoryTarget]) -> None:
    workspace, source, target = flaky
    source.unusable = {"m9": "InvoiceType"}
    for attempt in (1, 2):
        report = run_sync(workspace)
        assert report.exit_code == EXIT_PARTIAL, report.as_dict()
        assert report.imported["failed"] == 1
        [problem] = report.problems
        assert problem.document == "m9" and "field InvoiceType" in problem.message
        # Held before m9 (m0..m6 is the first page), and the items after it still imported.
        assert workspace.state.get_cursor("memory", "c1") == cursor_at(source, 6)
        assert len(target.stored) == 24
        [failure] = workspace.state.failures("memory", "c1")
        assert (failure.ref.source_id, failure.kind, failure.field, failure.attempts) == (
            "m9", "listing", "InvoiceType", attempt)

    source.unusable = {}
    fixed = run_sync(workspace)  # no --full
    assert fixed.exit_code == EXIT_OK and fixed.imported["new"] == 1
    assert len(target.stored) == 25 and failure_keys(workspace) == []
    assert workspace.state.get_cursor("memory", "c1") == cursor_at(source, 24)


def test_listed_items_without_an_id_get_a_key_and_stale_ones_do_not_pile_up(
        flaky: tuple[Workspace, FlakySource, MemoryTarget]) -> None:
    workspace, source, target = flaky
    source.unusable = {"m3": "Id", "m12": "Id"}
    for _ in range(3):
        report = run_sync(workspace)
        assert report.exit_code == EXIT_PARTIAL
        assert sorted(p.document or "" for p in report.problems) == ["listing#1", "listing#2"]
        assert sorted(failure_keys(workspace)) == [("listing#1", "listing", "Id"), ("listing#2", "listing", "Id")]
    source.unusable = {"m12": "Id"}
    run_sync(workspace)
    assert failure_keys(workspace) == [("listing#1", "listing", "Id")]
    source.unusable = {}
    assert run_sync(workspace).exit_code == EXIT_OK
    assert failure_keys(workspace) == [] and len(target.stored) == 25


def run_with_deadline(workspace: Workspace, seconds: float = 60) -> SyncReport:
    """run_sync in a thread: a hang fails the test instead of freezing it."""
    result: list[SyncReport] = []
    thread = threading.Thread(target=lambda: result.append(run_sync(workspace)), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "sync hung"
    return result[0]


@pytest.mark.parametrize("method", ["set_cursor", "record_delivery", "upsert_document"])
def test_a_full_disk_ends_the_run_cleanly_instead_of_hanging(
        memory_workspace: Workspace, monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    def full(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError(DISK_FULL)

    monkeypatch.setattr(memory_workspace.state, method, full)
    monkeypatch.setattr(memory_workspace.state, "record_failure", full)
    report = run_with_deadline(memory_workspace)
    assert report.exit_code == EXIT_FATAL
    assert len(report.fatal) == 1 and "disk of the invoicesync home is full" in report.fatal[0]
    assert "\n" not in report.fatal[0]


def test_a_dying_backlog_feeder_ends_the_run_with_one_line(
        memory_workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(target: str, export_options: str | None = None) -> Iterator[Document]:
        raise RuntimeError("cannot read\nthe ledger")

    monkeypatch.setattr(memory_workspace.state, "undelivered", broken)
    report = run_with_deadline(memory_workspace)
    assert report.exit_code == EXIT_FATAL
    assert report.fatal == ["reading the backlog of memtarget failed: RuntimeError: cannot read the ledger"]


def test_blob_temp_files_left_by_a_killed_run_are_cleaned_at_start(memory_workspace: Workspace) -> None:
    leftovers = [memory_workspace.blobs.root / "tmp" / name for name in ("tmpab12cd", "tmpzz99")]
    for path in leftovers:
        path.write_bytes(b"half a PDF")
    assert run_sync(memory_workspace).exit_code == EXIT_OK
    assert not any(path.exists() for path in leftovers)
    kept = next(iter(memory_workspace.state.find_documents(DocumentFilter()))).files[0]
    assert memory_workspace.blobs.exists(kept.sha256)  # real blobs are kept


class EditedWhileListed(FlakySource):
    """m4 is listed twice (edited while listed, so it comes again later in the same listing); its
    first fetch fails."""

    def __init__(self) -> None:
        super().__init__(25, page=7)
        self.fetched: list[str] = []

    @hookimpl
    def list_documents(self, account: Account, company: Company, cursor: str | None,
                       ctx: Context) -> Iterator[Any]:
        again = None
        for item in FlakySource.list_documents(self, account, company, cursor, ctx):
            if isinstance(item, DocumentRef) and item.source_id == "m4":
                again = item
            yield item
        if again is not None:
            yield again

    @hookimpl
    def fetch_document(self, account: Account, company: Company, ref: DocumentRef, ctx: Context) -> Document:
        self.fetched.append(ref.source_id)
        if ref.source_id == "m4" and self.fetched.count("m4") == 1:
            raise RuntimeError("the order changed while it was read")
        return FlakySource.fetch_document(self, account, company, ref, ctx)


def test_a_failure_is_cleared_by_a_later_fetch_in_the_same_listing_and_only_failures_are_cleared(
        workspace_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from invoicesync.accounts import connect
    from invoicesync.context import NonInteractiveUI

    source, target = EditedWhileListed(), MemoryTarget()
    plugins = Plugins.from_objects({"memory": (PluginKind.SOURCE, source), "memtarget": (PluginKind.TARGET, target)})
    workspace = workspace_factory(plugins=plugins)
    connect(workspace, "memory", ui=NonInteractiveUI())
    connect(workspace, "memtarget", ui=NonInteractiveUI())
    cleared: list[str] = []
    clear_failure = workspace.state.clear_failure

    def counting_clear(account: str, company: str, source_id: str) -> None:
        cleared.append(source_id)
        clear_failure(account, company, source_id)

    monkeypatch.setattr(workspace.state, "clear_failure", counting_clear)
    report = run_sync(workspace)
    assert source.fetched.count("m4") == 2
    assert report.imported["failed"] == 1 and report.imported["new"] == 25, report.as_dict()["problems"][:2]
    # The failure its first fetch recorded is gone with the second; no other document had one to
    # clear (a DELETE per document was a wasted round trip on PostgreSQL).
    assert failure_keys(workspace) == [] and cleared == ["m4"]
    assert len(target.stored) == 25
