"""Core export options (files, directions, kinds, since/until, companies), their re-check when
changed, unknown settings refused, and deletions handed to targets by API version."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from invoicesync import DeliveryStatus, Direction, Document, DocumentKind, PluginKind
from invoicesync.accounts import connect
from invoicesync.context import NonInteractiveUI, PluginInfo
from invoicesync.errors import ConfigError
from invoicesync.export_options import ExportOptions
from invoicesync.hookspecs import hookimpl
from invoicesync.pipeline import EXIT_OK, run_sync
from invoicesync.plugins import Plugins
from invoicesync.testing import MemorySource, MemoryTarget
from invoicesync.workspace import Workspace

TERMS = ("terms.pdf", "application/pdf", b"%PDF terms\n")
SHEET = ("lines.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", b"PK\x03\x04 sheet")


def doc_id(source_id: str) -> str:
    return Document.make_id("memory", "memory", "c1", source_id)


def set_settings(workspace: Workspace, name: str, **settings: Any) -> None:
    account = workspace.account(name)
    account.settings = {**account.settings, **settings}
    account.settings = {k: v for k, v in account.settings.items() if v is not None}
    workspace.state.save_account(account)


def test_every_file_is_handed_over_unless_the_files_option_narrows_it(
        memory_workspace: Workspace, memory_plugins: tuple[Plugins, MemorySource, MemoryTarget]) -> None:
    _, source, target = memory_plugins
    source.records[0].attachments = [TERMS, SHEET]
    source.records[0].ubl = b"<Invoice/>"
    set_settings(memory_workspace, "memtarget", files=["pdf", "ubl"])
    assert run_sync(memory_workspace).exit_code == EXIT_OK
    assert target.files[doc_id("m0")] == ["INV-0000.pdf", "INV-0000.xml"]

    # Widening the option re-checks the settled documents and back-fills what is now wanted.
    set_settings(memory_workspace, "memtarget", files=None)
    report = run_sync(memory_workspace)
    assert target.files[doc_id("m0")] == ["INV-0000.pdf", "INV-0000.xml", "terms.pdf", "lines.xlsx"]
    assert report.exported["memtarget"]["unchanged"] == 24  # offered again: the target looked up
    # And then it is settled under the new options: a third run offers nothing.
    assert run_sync(memory_workspace).exported == {}


def test_filtered_documents_are_skipped_with_the_reason_also_in_a_dry_run(
        memory_workspace: Workspace, memory_plugins: tuple[Plugins, MemorySource, MemoryTarget]) -> None:
    _, source, target = memory_plugins
    source.records[1].direction = Direction.SALES
    source.records[2].issue_date = date(2024, 12, 31)
    source.records[3].kind = DocumentKind.OFFER
    set_settings(memory_workspace, "memtarget", directions="purchase", since="2025-01-01",
                 kinds=["invoice", "credit_note"])
    dry = run_sync(memory_workspace, dry_run=True)
    assert dry.exported["memtarget"]["skipped"] == 3 and dry.exported["memtarget"]["planned"] == 22

    report = run_sync(memory_workspace)
    assert report.exported["memtarget"]["skipped"] == 3 and len(target.stored) == 22
    reasons = report.skipped_reasons["memtarget"]
    assert reasons["sales documents are not exported here (directions = purchase)"] == 1
    assert reasons["issued before 2025-01-01 (since)"] == 1
    assert reasons["offer documents are not exported here (kinds = invoice, credit_note)"] == 1
    skipped = memory_workspace.state.get_delivery(doc_id("m1"), "memtarget")
    assert skipped is not None and skipped.status is DeliveryStatus.SKIPPED

    # Dropping the filter delivers what it held back, and nothing twice.
    set_settings(memory_workspace, "memtarget", directions=None, since=None, kinds=None)
    run_sync(memory_workspace)
    assert len(target.stored) == 25 and target.writes == 25


def test_companies_and_until_filters(memory_workspace: Workspace,
                                     memory_plugins: tuple[Plugins, MemorySource, MemoryTarget]) -> None:
    _, _, target = memory_plugins
    set_settings(memory_workspace, "memtarget", companies=["someone-else"])
    report = run_sync(memory_workspace)
    assert target.writes == 0 and report.exported["memtarget"]["skipped"] == 25
    set_settings(memory_workspace, "memtarget", companies=["Acme BV"], until="2025-12-31")
    report = run_sync(memory_workspace)
    assert target.writes == 0 and "issued after 2025-12-31 (until)" in report.skipped_reasons["memtarget"]
    set_settings(memory_workspace, "memtarget", companies=["c1"], until=None)
    run_sync(memory_workspace)
    assert target.writes == 25


def test_export_options_are_validated_and_named() -> None:
    options = ExportOptions.model_validate({"files": "pdf, attachment", "since": "2025-01-01"})
    assert options.files == ["pdf", "attachments"] and options.since == date(2025, 1, 1)
    assert options.fingerprint() == ExportOptions(files=["attachments", "pdf"], since=date(2025, 1, 1)).fingerprint()
    assert options.fingerprint() != ExportOptions().fingerprint()
    with pytest.raises(ValueError, match="since"):
        ExportOptions(since=date(2026, 1, 1), until=date(2025, 1, 1))
    with pytest.raises(ValueError):
        ExportOptions.model_validate({"files": ["pdf", "jpeg"]})
    # An empty value (`connect … --since ""`) lifts a narrowing set earlier.
    assert ExportOptions.model_validate({"files": "", "since": ""}) == ExportOptions()


def test_a_bad_export_option_is_refused_at_connect(memory_workspace: Workspace) -> None:
    with pytest.raises(ConfigError, match="directions"):
        connect(memory_workspace, "memtarget", ui=NonInteractiveUI(), name="t2", settings={"directions": "both"})


def test_unknown_settings_in_the_toml_are_an_error_listing_the_valid_ones(
        workspace_factory: Callable[..., Workspace], memory_plugins: tuple[Plugins, MemorySource, MemoryTarget],
        tmp_path: Path) -> None:
    config = tmp_path / "invoicesync.toml"
    config.write_text('[accounts.archive]\nplugin = "localfs"\n[accounts.archive.settings]\n'
                      'root = "/tmp/x"\ntempalte = "{number}.{ext}"\nfiles = ["pdf"]\n')
    workspace = workspace_factory(plugins=memory_plugins[0], config_file=config)
    with pytest.raises(ConfigError) as info:
        workspace.accounts()
    message = str(info.value)
    assert "unknown setting tempalte" in message and "template" in message and "on_change" in message
    assert "files" in message and "since" in message  # the core's export options are valid there too


def test_a_stored_account_with_an_unknown_setting_is_refused_with_the_valid_ones(
        memory_workspace: Workspace) -> None:
    set_settings(memory_workspace, "memtarget", colour="blue")
    with pytest.raises(ConfigError, match=r"unknown setting colour.*export options: companies"):
        memory_workspace.settings_for(memory_workspace.account("memtarget"))


@dataclass(eq=False)
class OldTarget(MemoryTarget):
    """A target written for API 1: it knows nothing of deletions."""

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(kind=PluginKind.TARGET, title="Old target", api_version=(1, 1))


def test_deletions_go_to_api_2_targets_only_and_only_if_delivered_before(
        workspace_factory: Callable[..., Workspace]) -> None:
    source, new, old = MemorySource(4), MemoryTarget(), OldTarget()
    plugins = Plugins.from_objects({"memory": (PluginKind.SOURCE, source), "new": (PluginKind.TARGET, new),
                                    "old": (PluginKind.TARGET, old)})
    workspace = workspace_factory(plugins=plugins)
    for name in ("memory", "new", "old"):
        connect(workspace, name, ui=NonInteractiveUI())
    run_sync(workspace)
    source.touch("m1", deleted=True)
    source.records.append(source.records[0].__class__(source_id="m9", modified_at=source.records[1].modified_at,
                                                      number="INV-9"))
    source.touch("m9", deleted=True)  # deleted before any target ever had it

    dry = run_sync(workspace, dry_run=True)
    assert dry.exported["new"]["planned"] == 1 and doc_id("m1") not in new.deleted

    report = run_sync(workspace)
    assert report.exported["new"]["deleted"] == 1 and new.deleted == {doc_id("m1")}
    assert doc_id("m1") not in new.stored
    assert report.exported["old"] == {"skipped": 1}
    assert "deleted at the source; this target's plugin does not handle deletions" in report.skipped_reasons["old"]
    assert doc_id("m1") in old.stored  # never handed a deletion it would have taken for a write
    assert workspace.state.get_delivery(doc_id("m9"), "new") is None  # m9 was never imported alive
    # Settled: the next run hands nothing again.
    assert run_sync(workspace).exported == {}


def test_a_document_deleted_before_delivery_is_skipped(
        memory_workspace: Workspace, memory_plugins: tuple[Plugins, MemorySource, MemoryTarget]) -> None:
    _, source, target = memory_plugins
    target.fail_ids = {"m2"}
    run_sync(memory_workspace)
    target.fail_ids = set()
    source.touch("m2", deleted=True)
    report = run_sync(memory_workspace)
    assert report.exported["memtarget"] == {"skipped": 1}
    assert report.skipped_reasons["memtarget"] == {"deleted at the source before it was delivered here": 1}
    assert doc_id("m2") not in target.stored and not target.deleted


def test_deliveries_made_before_the_upgrade_are_back_filled_once(
        memory_workspace: Workspace, memory_plugins: tuple[Plugins, MemorySource, MemoryTarget]) -> None:
    run_sync(memory_workspace)
    # As an older invoicesync left the ledger: no export-options fingerprint on the deliveries.
    memory_workspace.state._exec("UPDATE deliveries SET export_options = NULL")  # type: ignore[attr-defined]
    report = run_sync(memory_workspace)
    assert report.exported["memtarget"]["unchanged"] == 25
    assert run_sync(memory_workspace).exported == {}


def test_export_options_can_come_from_the_environment(
        memory_workspace: Workspace, memory_plugins: tuple[Plugins, MemorySource, MemoryTarget],
        monkeypatch: pytest.MonkeyPatch) -> None:
    _, source, target = memory_plugins
    source.records[0].direction = Direction.SALES
    monkeypatch.setenv("INVOICESYNC_MEMTARGET_DIRECTIONS", "purchase")
    report = run_sync(memory_workspace)
    assert report.exported["memtarget"]["skipped"] == 1 and doc_id("m0") not in target.stored
