"""Streaming pushes (hook API 4): a target with ``PluginInfo.streaming`` gets one lazy stream of
requests per run instead of batches, and the ledger works exactly as for batches: the intent is
written before the plugin sees a document, the outcome only when the plugin reports it, and what
it never reports is failed (and delivered by a later run)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from invoicesync import Account, Context, Delivery, DeliveryStatus, PluginInfo, PluginKind, PushRequest
from invoicesync.hookspecs import hookimpl
from invoicesync.pipeline import EXIT_FATAL, SyncReport, run_sync
from invoicesync.plugins import Plugins
from invoicesync.state import DocumentFilter
from invoicesync.testing import MemorySource, MemoryTarget
from invoicesync.workspace import Workspace

TARGET = "streamtarget"


@dataclass(eq=False)  # plugins must stay hashable for pluggy
class StreamingTarget(MemoryTarget):
    """A MemoryTarget that takes a stream and reports each document only once the stream ended
    (as a target that commits in one go would), checking the ledger on the way."""

    calls: list[str] = field(default_factory=list)
    #: Each document's ledger status when the plugin got it.
    seen_status: list[DeliveryStatus | None] = field(default_factory=list)
    workspace: Workspace | None = None
    #: Report only this many documents of a stream, then return (the rest have no outcome).
    report_only: int | None = None
    #: Raise after taking this many documents of the first stream, reporting none of them.
    raise_after: int | None = None

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(kind=PluginKind.TARGET, title="Streaming target", api_version=(1, 4), streaming=True)

    @hookimpl
    def push_documents(self, account: Account, requests: Iterable[PushRequest], ctx: Context) -> Iterator[Delivery]:
        self.calls.append(type(requests).__name__)
        taken: list[PushRequest] = []
        for request in requests:
            assert self.workspace is not None
            row = self.workspace.state.get_delivery(request.document.id, account.name)
            self.seen_status.append(row.status if row else None)
            taken.append(request)
            if self.raise_after is not None and len(taken) >= self.raise_after:
                self.raise_after = None
                raise RuntimeError("the target fell over")
        if self.report_only is not None:
            taken, self.report_only = taken[:self.report_only], None
        for request in taken:
            yield from MemoryTarget.push_documents(self, account, [request], ctx)


@pytest.fixture
def setup(workspace_factory: Any) -> tuple[Workspace, MemorySource, StreamingTarget]:
    from invoicesync.accounts import connect
    from invoicesync.context import NonInteractiveUI

    source, target = MemorySource(23, page=7), StreamingTarget()
    plugins = Plugins.from_objects({"memory": (PluginKind.SOURCE, source), TARGET: (PluginKind.TARGET, target)})
    workspace = workspace_factory(plugins=plugins)
    target.workspace = workspace
    connect(workspace, "memory", ui=NonInteractiveUI())
    connect(workspace, TARGET, ui=NonInteractiveUI())
    return workspace, source, target


def statuses(workspace: Workspace) -> list[DeliveryStatus]:
    rows = [workspace.state.get_delivery(d.id, TARGET) for d in workspace.state.find_documents(DocumentFilter())]
    return [row.status if row else DeliveryStatus.PENDING for row in rows]


def test_one_lazy_stream_per_run_with_the_intent_before_and_the_outcome_after(
        setup: tuple[Workspace, MemorySource, StreamingTarget]) -> None:
    workspace, _, target = setup
    report = run_sync(workspace)
    assert report.exit_code == 0, report.problems
    assert report.exported[TARGET]["delivered"] == 23 and len(target.stored) == 23
    assert target.calls == ["generator"]  # not batches of lists: one stream for the whole run
    assert target.seen_status == [DeliveryStatus.PENDING] * 23  # the intent came first
    assert statuses(workspace) == [DeliveryStatus.DELIVERED] * 23

    again = run_sync(workspace)
    assert again.exit_code == 0 and target.calls == ["generator"]  # nothing to push: no call at all


def test_what_a_stream_never_reports_fails_and_the_next_run_delivers_it(
        setup: tuple[Workspace, MemorySource, StreamingTarget]) -> None:
    workspace, _, target = setup
    target.report_only = 20
    report = run_sync(workspace)
    assert report.exported[TARGET]["delivered"] == 20 and report.exported[TARGET]["failed"] == 3
    assert all("reported no outcome" in p.message for p in report.problems)
    later = run_sync(workspace)
    assert later.exit_code == 0 and later.exported[TARGET]["delivered"] == 3
    assert statuses(workspace) == [DeliveryStatus.DELIVERED] * 23 and target.writes == 23


def test_a_stream_that_raises_fails_what_it_took_and_the_rest_still_goes(
        setup: tuple[Workspace, MemorySource, StreamingTarget]) -> None:
    workspace, _, target = setup
    target.raise_after = 4
    report = run_sync(workspace)
    assert report.exported[TARGET]["failed"] == 4
    assert all("the target fell over" in p.message for p in report.problems)
    # The documents still queued went to a new stream of the same run.
    assert report.exported[TARGET]["delivered"] == 19 and len(target.calls) >= 2
    assert run_sync(workspace).exported[TARGET]["delivered"] == 4
    assert statuses(workspace) == [DeliveryStatus.DELIVERED] * 23


def test_a_transient_failure_is_retried_in_a_later_stream_of_the_same_run(
        setup: tuple[Workspace, MemorySource, StreamingTarget]) -> None:
    workspace, source, target = setup
    target.transient = {source.records[5].source_id: 1}
    report = run_sync(workspace)
    assert report.exit_code == 0, report.problems
    assert report.exported[TARGET]["delivered"] == 23 and report.exported[TARGET].get("failed", 0) == 0
    assert len(target.calls) == 2  # the retry came after the first stream had ended


@pytest.mark.parametrize("method", ["record_delivery", "document_for_push"])
def test_a_full_disk_ends_a_streaming_run_cleanly_instead_of_hanging(
        setup: tuple[Workspace, MemorySource, StreamingTarget], monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    workspace, _, _ = setup

    def full(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(workspace.state, method, full)
    result: list[SyncReport] = []
    thread = threading.Thread(target=lambda: result.append(run_sync(workspace)), daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "sync hung"
    assert result[0].exit_code == EXIT_FATAL
    assert any("disk of the invoicesync home is full" in line for line in result[0].fatal)
