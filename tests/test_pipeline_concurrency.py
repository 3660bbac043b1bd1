"""Import and export do not wait for each other: a slow target never stalls the fetch threads (what
does not fit its queue waits in the ledger's backlog), and still every document is pushed once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from invoicesync import (
    Account,
    Checkpoint,
    Company,
    Context,
    Delivery,
    Document,
    DocumentRef,
    PluginInfo,
    PushRequest,
    Settings,
)
from invoicesync.accounts import connect
from invoicesync.context import NonInteractiveUI
from invoicesync.hookspecs import hookimpl
from invoicesync.pipeline import EXIT_OK, SyncReport, run_sync
from invoicesync.plugins import PluginKind, Plugins
from invoicesync.testing import MemorySource, MemoryTarget
from invoicesync.workspace import Workspace

COUNT = 60  # far more than a MemoryTarget's queue (batch 5 x concurrency 2 x 2) and its workers hold


@dataclass(eq=False)
class GatedTarget(MemoryTarget):
    """A MemoryTarget whose pushes wait until ``gate`` opens: a target far slower than the source."""

    gate: threading.Event = field(default_factory=threading.Event)
    pushed_ids: list[str] = field(default_factory=list)

    @hookimpl
    def push_documents(self, account: Account, requests: list[PushRequest], ctx: Context) -> Iterator[Delivery]:
        self.gate.wait(30)
        self.pushed_ids += [r.document.source_id for r in requests]
        yield from MemoryTarget.push_documents(self, account, requests, ctx)


def setup(workspace_factory: Callable[..., Workspace], source: MemorySource,
          target: MemoryTarget) -> Workspace:  # every company the source has
    plugins = Plugins.from_objects({"memory": (PluginKind.SOURCE, source), "memtarget": (PluginKind.TARGET, target)})
    workspace = workspace_factory(plugins=plugins)
    connect(workspace, "memory", ui=NonInteractiveUI(), companies=("*",))
    connect(workspace, "memtarget", ui=NonInteractiveUI())
    return workspace


def wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_a_slow_target_does_not_stall_the_import_and_still_gets_each_document_once(
        workspace_factory: Callable[..., Workspace]) -> None:
    source, target = MemorySource(COUNT, page=10), GatedTarget()
    workspace = setup(workspace_factory, source, target)
    reports: list[SyncReport] = []
    runner = threading.Thread(target=lambda: reports.append(run_sync(workspace)))
    runner.start()
    try:
        # Every document is fetched and stored while the target has not finished a single push.
        assert wait_for(lambda: source.fetches == COUNT, 10), f"the import stalled at {source.fetches}/{COUNT}"
        assert target.pushed_ids == []
    finally:
        target.gate.set()
        runner.join(60)
    report = reports[0]
    assert report.exit_code == EXIT_OK, report.as_dict()
    assert report.imported["new"] == COUNT
    assert report.exported["memtarget"]["delivered"] == COUNT
    assert sorted(target.pushed_ids) == sorted(r.source_id for r in source.records)  # each once
    assert target.writes == COUNT
    assert list(workspace.state.undelivered("memtarget")) == []


def test_a_dry_run_with_a_slow_target_still_plans_every_document(workspace_factory: Callable[..., Workspace]) -> None:
    source, target = MemorySource(COUNT, page=10), GatedTarget()
    target.gate.set()
    workspace = setup(workspace_factory, source, target)
    report = run_sync(workspace, dry_run=True)  # nothing is stored, so nothing can wait in a backlog
    assert report.exit_code == EXIT_OK, report.as_dict()
    assert report.exported["memtarget"]["planned"] == COUNT
    assert target.writes == 0


@dataclass(eq=False)
class FailingOnceTarget(GatedTarget):
    """Fails ``fail_ids`` for good (no retry_after): each must be pushed once this run, not again by
    the backlog read that follows the import."""


def test_a_failure_is_not_pushed_again_by_the_backlog_read_of_the_same_run(
        workspace_factory: Callable[..., Workspace]) -> None:
    source, target = MemorySource(COUNT, page=10), FailingOnceTarget()
    target.fail_ids = {"m3", "m40"}
    workspace = setup(workspace_factory, source, target)
    runner = threading.Thread(target=lambda: reports.append(run_sync(workspace)))
    reports: list[SyncReport] = []
    runner.start()
    try:
        assert wait_for(lambda: source.fetches == COUNT, 10)
    finally:
        target.gate.set()
        runner.join(60)
    report = reports[0]
    assert report.exported["memtarget"]["failed"] == 2, report.as_dict()
    assert report.exported["memtarget"]["delivered"] == COUNT - 2
    assert sorted(target.pushed_ids) == sorted(r.source_id for r in source.records)  # failures once too


class CompanyCounting(MemorySource):
    """Lists two companies, each listing slow, and records how many list at once."""

    def __init__(self, count: int) -> None:
        super().__init__(count, page=5)
        self.listing_now = 0
        self.most_at_once = 0
        self._count_lock = threading.Lock()

    @hookimpl
    def auth(self, account: Account, ctx: Context) -> list[Company]:
        return [Company(id="c1", name="One"), Company(id="c2", name="Two")]

    @hookimpl
    def list_documents(self, account: Account, company: Company, cursor: str | None,
                       ctx: Context) -> Iterator[object]:
        with self._count_lock:
            self.listing_now += 1
            self.most_at_once = max(self.most_at_once, self.listing_now)
        try:
            for item in MemorySource.list_documents(self, account, company, cursor, ctx):
                time.sleep(0.005)  # a page's round trip
                yield item
        finally:
            with self._count_lock:
                self.listing_now -= 1


def test_the_companies_of_one_account_are_listed_at_once(workspace_factory: Callable[..., Workspace]) -> None:
    source, target = CompanyCounting(20), MemoryTarget()
    workspace = setup(workspace_factory, source, target)
    report = run_sync(workspace)
    assert report.exit_code == EXIT_OK, report.as_dict()
    assert report.imported["new"] == 40
    assert source.most_at_once == 2
    assert len(target.stored) == 40
    assert run_sync(workspace).imported.get("new", 0) == 0  # each company's cursor was saved


class TricklingSource(MemorySource):
    """A source that hands over one document every ``gap`` seconds (a slow service, a busy machine)."""

    def __init__(self, count: int, gap: float) -> None:
        super().__init__(count, page=count)
        self.gap = gap

    @hookimpl
    def plugin_info(self) -> PluginInfo:  # one fetch at a time: the documents come one by one
        return PluginInfo(kind=PluginKind.SOURCE, title="Trickling source", settings=Settings, api_version=(1, 2),
                          concurrency=1)

    @hookimpl
    def fetch_document(self, account: Account, company: Company, ref: DocumentRef, ctx: Context) -> Document:
        time.sleep(self.gap)
        return MemorySource.fetch_document(self, account, company, ref, ctx)


def test_a_slow_import_still_fills_the_targets_batches(workspace_factory: Callable[..., Workspace]) -> None:
    # Documents 0.1 s apart (one fetch at a time): a gap that used to end every batch after one
    # document, so a batch-committing target made one commit per document.
    source, target = TricklingSource(10, gap=0.1), MemoryTarget()
    plugins = Plugins.from_objects({"memory": (PluginKind.SOURCE, source), "memtarget": (PluginKind.TARGET, target)})
    workspace = workspace_factory(plugins=plugins)
    connect(workspace, "memory", ui=NonInteractiveUI(), companies=("*",))
    connect(workspace, "memtarget", ui=NonInteractiveUI())
    report = run_sync(workspace)
    assert report.exit_code == EXIT_OK, report.as_dict()
    assert sum(target.batches) == 10
    assert max(target.batches) >= 3, target.batches


class EditedWhileListedSource(MemorySource):
    """Lists ``m0`` twice (edited while it was listed, it moved to the end): the first fetch is slow
    and gets the old version, the second is quick and gets the new one."""

    def __init__(self) -> None:
        super().__init__(1)
        self.calls = 0
        self.old_answer_read = threading.Event()

    @hookimpl
    def list_documents(self, account: Account, company: Company, cursor: str | None,
                       ctx: Context) -> Iterator[DocumentRef | Checkpoint]:
        record = self.records[0]
        yield DocumentRef(source_id=record.source_id, modified_at=record.modified_at)
        yield DocumentRef(source_id=record.source_id, modified_at=record.modified_at)
        yield Checkpoint(cursor=record.modified_at.isoformat())

    @hookimpl
    def fetch_document(self, account: Account, company: Company, ref: DocumentRef, ctx: Context) -> Document:
        with self._lock:
            self.calls += 1
            first = self.calls == 1
        if first:
            document = MemorySource.fetch_document(self, account, company, ref, ctx)
            self.old_answer_read.set()
            time.sleep(0.5)  # the answer was read before the edit, and is stored late
            return document
        self.old_answer_read.wait(5)
        self.records[0].number = "INV-EDITED"
        return MemorySource.fetch_document(self, account, company, ref, ctx)


def test_a_document_listed_twice_ends_in_the_library_as_its_last_fetch_saw_it(
        workspace_factory: Callable[..., Workspace]) -> None:
    source, target = EditedWhileListedSource(), MemoryTarget()
    workspace = setup(workspace_factory, source, target)
    assert run_sync(workspace).exit_code == EXIT_OK
    stored = workspace.state.get_document("memory:memory:c1:m0")
    assert stored is not None and stored.number == "INV-EDITED"
