"""The sync pipeline: exactly once, nothing lost, partial failures, cursors, dry run."""

from __future__ import annotations

from invoicesync import DeliveryStatus, Document
from invoicesync.pipeline import EXIT_OK, EXIT_PARTIAL, CursorTracker, run_sync
from invoicesync.plugins import Plugins
from invoicesync.state import DocumentFilter
from invoicesync.testing import MemorySource, MemoryTarget
from invoicesync.workspace import Workspace


def ids(workspace: Workspace) -> set[str]:
    return {d.source_id for d in workspace.state.find_documents(DocumentFilter())}


def test_first_sync_imports_everything_and_delivers_each_once(
        memory_workspace: Workspace, memory_plugins: tuple[Plugins, MemorySource, MemoryTarget]) -> None:
    _, _source, target = memory_plugins
    report = run_sync(memory_workspace)
    assert report.exit_code == EXIT_OK, report.as_dict()
    assert report.imported["new"] == 25
    assert ids(memory_workspace) == {f"m{i}" for i in range(25)}
    assert len(target.stored) == 25 and target.writes == 25
    assert max(target.batches) <= 5  # the plugin's batch size is honoured

    again = run_sync(memory_workspace)
    assert again.exit_code == EXIT_OK
    assert again.imported["new"] == 0 and target.writes == 25  # nothing twice


def test_cursor_moves_only_past_settled_items() -> None:
    saved: list[str] = []
    tracker = CursorTracker(saved.append)
    a, b = tracker.add(), tracker.add()
    tracker.checkpoint("after-b")
    c = tracker.add()
    tracker.checkpoint("after-c")
    tracker.settle(b)
    assert saved == []  # a is still in flight
    tracker.settle(a)
    assert saved == ["after-b"]
    tracker.settle(c)
    assert saved == ["after-b", "after-c"]


def test_a_bad_document_fails_alone_and_is_retried_after_the_fix(
        memory_workspace: Workspace, memory_plugins: tuple[Plugins, MemorySource, MemoryTarget]) -> None:
    _, source, target = memory_plugins
    source.records[3].broken = True
    report = run_sync(memory_workspace)
    assert report.exit_code == EXIT_PARTIAL
    assert report.imported["failed"] == 1 and report.imported["new"] == 24
    problem = report.problems[0]
    assert problem.document == "m3" and "field TotalIncl" in problem.message and "INV-0003" in problem.message
    assert len(target.stored) == 24
    # The cursor moved past m3, yet m3 is not lost: the failure is retried first.
    source.records[3].broken = False
    report = run_sync(memory_workspace)
    assert report.exit_code == EXIT_OK
    assert report.imported["new"] == 1 and len(target.stored) == 25


def test_failed_deliveries_are_retried_and_never_duplicated(
        memory_workspace: Workspace, memory_plugins: tuple[Plugins, MemorySource, MemoryTarget]) -> None:
    _, _source, target = memory_plugins
    target.fail_ids = {"m1", "m2"}
    assert run_sync(memory_workspace).exit_code == EXIT_PARTIAL
    target.fail_ids = set()
    report = run_sync(memory_workspace)
    assert report.exported["memtarget"]["delivered"] == 2
    assert target.writes == 25


def test_a_crash_between_push_and_ledger_is_settled_without_a_second_write(
        memory_workspace: Workspace, memory_plugins: tuple[Plugins, MemorySource, MemoryTarget]) -> None:
    _, _source, target = memory_plugins
    run_sync(memory_workspace)
    # What a crash after the write leaves behind: the intent ("pending"), never the outcome.
    memory_workspace.state._exec("UPDATE deliveries SET status = 'pending'")
    report = run_sync(memory_workspace)
    assert report.exported["memtarget"]["unchanged"] == 25
    assert target.writes == 25
    first = Document.make_id("memory", "memory", "c1", "m0")
    statuses = {d.status for d in memory_workspace.state.deliveries_for(first)}
    assert statuses == {DeliveryStatus.UNCHANGED}


def test_changed_and_deleted_documents(memory_workspace: Workspace,
                                       memory_plugins: tuple[Plugins, MemorySource, MemoryTarget]) -> None:
    _, source, target = memory_plugins
    run_sync(memory_workspace)
    source.touch("m5", number="INV-0005-B")
    source.touch("m6", deleted=True)
    report = run_sync(memory_workspace)
    assert report.imported["updated"] == 1 and report.imported["deleted"] == 1
    assert report.exported["memtarget"]["delivered"] == 1 and target.writes == 26
    deleted = memory_workspace.state.get_document(Document.make_id("memory", "memory", "c1", "m6"))
    assert deleted is not None and deleted.deleted  # marked, not dropped


def test_dry_run_writes_nothing_anywhere(memory_workspace: Workspace,
                                         memory_plugins: tuple[Plugins, MemorySource, MemoryTarget]) -> None:
    _, _source, target = memory_plugins
    report = run_sync(memory_workspace, dry_run=True)
    assert report.exported["memtarget"]["planned"] == 25
    assert {p["path"] for p in report.planned} >= {"memory/INV-0000"}
    assert target.writes == 0 and ids(memory_workspace) == set()
    assert memory_workspace.state.get_cursor("memory", "c1") is None


def test_full_resync_imports_nothing_twice(memory_workspace: Workspace,
                                          memory_plugins: tuple[Plugins, MemorySource, MemoryTarget]) -> None:
    run_sync(memory_workspace)
    report = run_sync(memory_workspace, full=True)
    assert report.imported["unchanged"] == 25 and report.imported["new"] == 0
    assert memory_plugins[2].writes == 25


def test_an_account_whose_plugin_is_gone_is_reported_and_the_rest_sync(
        memory_workspace: Workspace, memory_plugins: tuple[Plugins, MemorySource, MemoryTarget]) -> None:
    from invoicesync import Account, AccountDirection

    memory_workspace.state.save_account(Account(name="old", plugin="uninstalled", direction=AccountDirection.EXPORT))
    report = run_sync(memory_workspace)
    assert report.exit_code == EXIT_PARTIAL and not report.fatal
    assert [p.where for p in report.problems] == ["old"]
    assert "no plugin called 'uninstalled'" in report.problems[0].message
    assert memory_plugins[2].writes == 25


def test_a_bug_in_a_source_fails_that_company_not_the_run(
        memory_workspace: Workspace, memory_plugins: tuple[Plugins, MemorySource, MemoryTarget]) -> None:
    _, source, target = memory_plugins
    source.records[7].source_id = None  # type: ignore[assignment]  # the plugin will trip over it
    report = run_sync(memory_workspace)
    assert report.exit_code == EXIT_PARTIAL
    assert "company Acme BV (c1)" in report.problems[0].message
    assert target.writes > 0  # what was listed before the failure still went through


def test_transient_failures_are_retried_in_the_same_run_a_few_times(
        memory_workspace: Workspace, memory_plugins: tuple[Plugins, MemorySource, MemoryTarget]) -> None:
    _, _, target = memory_plugins
    target.transient = {"m3": 2, "m4": 9}  # m3 gets through on its third try; m4 never does
    report = run_sync(memory_workspace)
    assert report.exported["memtarget"]["delivered"] == 24
    assert report.exported["memtarget"]["failed"] == 1
    assert [(p.document, p.message) for p in report.problems] == [
        (Document.make_id("memory", "memory", "c1", "m4"), "too_many_write_operations")]
    assert target.transient == {"m3": 0, "m4": 6}  # 1 try + 2 retries each, no more
    assert report.exit_code == EXIT_PARTIAL
    target.transient = {}
    assert run_sync(memory_workspace).exported["memtarget"]["delivered"] == 1  # the next run settles it
