"""What the export stage keeps in memory per document stays bounded however many documents a run
handles: settled outcomes are the ledger's to remember, unsettled ones (failures) only the latest few,
and still no document is pushed twice in one run."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from invoicesync import DeliveryStatus
from invoicesync.pipeline import EXIT_PARTIAL, NoProgress, SyncReport, _export, _report, run_sync
from invoicesync.testing import MemorySource
from invoicesync.workspace import Workspace

from .test_pipeline_concurrency import COUNT, FailingOnceTarget, GatedTarget, setup


@pytest.fixture
def remembered(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many document versions each target's workers still hold once they are closed."""
    sizes: list[int] = []
    close = _export.TargetWorkers.close

    def close_and_count(self: _export.TargetWorkers) -> None:
        close(self)
        sizes.append(len(self._handled))

    monkeypatch.setattr(_export.TargetWorkers, "close", close_and_count)
    return sizes


def test_delivered_documents_are_not_kept_in_memory(workspace_factory: Callable[..., Workspace],
                                                    remembered: list[int]) -> None:
    source, target = MemorySource(COUNT, page=10), GatedTarget()
    target.gate.set()
    workspace = setup(workspace_factory, source, target)
    report = run_sync(workspace)
    assert report.exported["memtarget"]["delivered"] == COUNT, report.as_dict()
    assert remembered == [0]


def test_failures_beyond_the_bound_are_still_not_pushed_twice_in_one_run(
        workspace_factory: Callable[..., Workspace], remembered: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    source, target = MemorySource(COUNT, page=10), FailingOnceTarget()
    target.gate.set()
    target.fail_ids = {"m1", "m3", "m7", "m20", "m33", "m41"}
    workspace = setup(workspace_factory, source, target)
    report = run_sync(workspace)
    assert report.exported["memtarget"]["failed"] == 6, report.as_dict()
    assert remembered == [6]  # the failures only, not the 54 delivered
    assert sorted(target.pushed_ids) == sorted(r.source_id for r in source.records)
    # From here on only the latest two are kept in memory; the ledger has all six.
    monkeypatch.setattr(_export, "UNSETTLED_IN_MEMORY", 2)

    def backlog_read(started_earlier: bool) -> list[str]:
        """Feed the target's backlog to fresh workers (nothing in memory, as after the bound let
        every failure go), started a minute before those failures or just now."""
        account = workspace.account("memtarget")
        ctx = workspace.context(account)
        target.pushed_ids.clear()
        workers = _export.TargetWorkers(account, ctx, workspace.plugins, workspace.state, SyncReport(),
                                        NoProgress(), dry_run=False, options=workspace.export_options(account))
        if started_earlier:
            workers._started -= timedelta(minutes=1)
        for document in workspace.state.undelivered(account.name, export_options=workers.requests.fingerprint):
            workers.feed(document)
        workers.close()
        ctx.close()
        assert len(workers._handled) <= 2
        return sorted(target.pushed_ids)

    # Failed in this run already: the ledger says so, and they wait for the next run.
    assert backlog_read(started_earlier=True) == []
    # Failed in an earlier run: offered again.
    assert backlog_read(started_earlier=False) == sorted(target.fail_ids)


def test_the_report_lists_the_first_problems_and_counts_the_rest(
        workspace_factory: Callable[..., Workspace], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_report, "PROBLEMS_LISTED", 3)
    source, target = MemorySource(COUNT, page=10), FailingOnceTarget()
    target.gate.set()
    target.fail_ids = {"m1", "m3", "m7", "m20", "m33", "m41"}
    workspace = setup(workspace_factory, source, target)
    report = run_sync(workspace)
    assert report.exported["memtarget"]["failed"] == 6
    assert len(report.problems) == 3 and report.problem_count == 6
    assert report.as_dict()["problems_not_listed"] == 3
    assert report.account_result("memtarget")["problems"] == 6
    assert report.exit_code == EXIT_PARTIAL
    # Every failure is still in the state, listed or not.
    failed = [d for d in (workspace.state.get_delivery(f"memory:memory:c1:{i}", "memtarget") for i in target.fail_ids)
              if d is not None and d.status is DeliveryStatus.FAILED]
    assert len(failed) == 6


def test_a_sync_leaves_no_reference_cycle_per_document(workspace_factory: Callable[..., Workspace],
                                                       cyclic_garbage: Callable[[], int]) -> None:
    """Garbage in reference cycles is freed only by a full collection, which comes seldom in a
    process with many long-lived objects: one cycle per document grew the peak RSS with the run."""
    import gc

    source, target = MemorySource(COUNT, page=10), GatedTarget()
    target.gate.set()
    workspace = setup(workspace_factory, source, target)
    gc.collect()
    gc.disable()
    try:
        report = run_sync(workspace)
        unreachable = cyclic_garbage()
    finally:
        gc.enable()
    assert report.exported["memtarget"]["delivered"] == COUNT, report.as_dict()
    assert unreachable < COUNT, f"{unreachable} objects in reference cycles after {COUNT} documents"
