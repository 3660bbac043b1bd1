from __future__ import annotations

import os
from pathlib import Path

from invoicesync import Document
from invoicesync.accounts import connect
from invoicesync.context import NonInteractiveUI
from invoicesync.pipeline import EXIT_OK, run_sync
from invoicesync.plugins import Plugins
from invoicesync.testing import MemorySource, MemoryTarget
from invoicesync.workspace import Workspace


def setup(workspace: Workspace, root: Path, template: str = "{company}/{year}/{number}.{ext}") -> None:
    connect(workspace, "localfs", ui=NonInteractiveUI(), name="folder",
            settings={"root": str(root), "template": template})


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_writes_pdf_and_data_atomically_and_a_rerun_writes_nothing(
        memory_workspace: Workspace, tmp_path: Path) -> None:
    root = tmp_path / "out"
    setup(memory_workspace, root)
    assert run_sync(memory_workspace, accounts=["memory", "folder"]).exit_code == EXIT_OK
    written = files(root)
    assert "Acme BV/2026/INV-0000.pdf" in written and "Acme BV/2026/INV-0000.json" in written
    assert len(written) == 50 and not [f for f in written if ".part" in f]
    mtimes = {p: os.stat(root / p).st_mtime_ns for p in written}
    report = run_sync(memory_workspace, accounts=["folder"], full=True)
    assert report.exported.get("folder", {}).get("delivered", 0) == 0
    assert {p: os.stat(root / p).st_mtime_ns for p in written} == mtimes


def test_colliding_names_keep_both_and_stay_idempotent_after_a_lost_ledger(
        memory_workspace: Workspace, memory_plugins: tuple[Plugins, MemorySource, MemoryTarget],
        tmp_path: Path) -> None:
    _, source, _ = memory_plugins
    source.records = source.records[:3]
    for record in source.records:
        record.number = "SAME"  # three documents render to one name
    root = tmp_path / "out"
    setup(memory_workspace, root)
    run_sync(memory_workspace, accounts=["memory", "folder"])
    pdfs = [f for f in files(root) if f.endswith(".pdf")]
    assert pdfs == ["Acme BV/2026/SAME (2).pdf", "Acme BV/2026/SAME (3).pdf", "Acme BV/2026/SAME.pdf"]
    # Crash between the write and the ledger record: the ledger forgets, the files stay.
    memory_workspace.state._exec("DELETE FROM deliveries WHERE target = 'folder'")
    report = run_sync(memory_workspace, accounts=["folder"])
    assert report.exported["folder"]["unchanged"] == 3
    assert [f for f in files(root) if f.endswith(".pdf")] == pdfs


def test_someone_elses_file_is_never_overwritten(memory_workspace: Workspace, tmp_path: Path) -> None:
    root = tmp_path / "out"
    (root / "Acme BV/2026").mkdir(parents=True)
    (root / "Acme BV/2026/INV-0000.pdf").write_bytes(b"the user's own file")
    setup(memory_workspace, root)
    run_sync(memory_workspace, accounts=["memory", "folder"])
    assert (root / "Acme BV/2026/INV-0000.pdf").read_bytes() == b"the user's own file"
    assert (root / "Acme BV/2026/INV-0000 (2).pdf").read_bytes().startswith(b"%PDF")


def test_a_changed_document_replaces_its_own_file(memory_workspace: Workspace,
                                                   memory_plugins: tuple[Plugins, MemorySource, MemoryTarget],
                                                   tmp_path: Path) -> None:
    _, source, _ = memory_plugins
    root = tmp_path / "out"
    setup(memory_workspace, root)
    run_sync(memory_workspace, accounts=["memory", "folder"])
    source.touch("m1", pdf=b"%PDF corrected\n")
    run_sync(memory_workspace, accounts=["memory", "folder"])
    assert (root / "Acme BV/2026/INV-0001.pdf").read_bytes() == b"%PDF corrected\n"
    assert not (root / "Acme BV/2026/INV-0001 (2).pdf").exists()


def test_a_document_without_pdf_still_lands_with_its_data(memory_workspace: Workspace,
                                                          memory_plugins: tuple[Plugins, MemorySource, MemoryTarget],
                                                          tmp_path: Path) -> None:
    _, source, _ = memory_plugins
    source.records[0].pdf = None
    root = tmp_path / "out"
    setup(memory_workspace, root)
    run_sync(memory_workspace, accounts=["memory", "folder"])
    doc = memory_workspace.state.get_document(Document.make_id("memory", "memory", "c1", "m0"))
    assert doc is not None and doc.pdf is None
    assert (root / "Acme BV/2026/INV-0000.json").exists()
    assert not (root / "Acme BV/2026/INV-0000.pdf").exists()


TERMS = ("terms.pdf", "application/pdf", b"%PDF terms\n")
SHEET = ("lines.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", b"PK sheet")
PHOTO = ("receipt.jpg", "image/jpeg", b"\xff\xd8\xff photo")


def test_every_file_of_a_document_is_written_beside_it_and_the_ledger_lists_only_those(
        memory_workspace: Workspace, memory_plugins: tuple[Plugins, MemorySource, MemoryTarget],
        tmp_path: Path) -> None:
    _, source, _ = memory_plugins
    source.records = source.records[:3]
    source.records[0].attachments = [TERMS, SHEET]
    source.records[1].pdf, source.records[1].attachments = None, [PHOTO]  # an image-only purchase
    source.records[2].ubl = b"<Invoice/>"
    root = tmp_path / "out"
    setup(memory_workspace, root)
    assert run_sync(memory_workspace, accounts=["memory", "folder"]).exit_code == EXIT_OK
    assert files(root) == sorted([
        "Acme BV/2026/INV-0000.pdf", "Acme BV/2026/INV-0000_terms.pdf", "Acme BV/2026/INV-0000_lines.xlsx",
        "Acme BV/2026/INV-0000.json",
        "Acme BV/2026/INV-0001.jpg", "Acme BV/2026/INV-0001.json",
        "Acme BV/2026/INV-0002.pdf", "Acme BV/2026/INV-0002.xml", "Acme BV/2026/INV-0002.json",
    ])
    assert (root / "Acme BV/2026/INV-0001.jpg").read_bytes() == PHOTO[2]
    delivery = memory_workspace.state.get_delivery(Document.make_id("memory", "memory", "c1", "m0"), "folder")
    assert delivery is not None and delivery.extra["files"] == [
        "Acme BV/2026/INV-0000.pdf", "Acme BV/2026/INV-0000_terms.pdf", "Acme BV/2026/INV-0000_lines.xlsx",
        "Acme BV/2026/INV-0000.json"]  # no UBL path for a document without UBL


def test_a_narrowed_files_option_is_back_filled_when_widened(
        memory_workspace: Workspace, memory_plugins: tuple[Plugins, MemorySource, MemoryTarget],
        tmp_path: Path) -> None:
    _, source, _ = memory_plugins
    source.records = source.records[:1]
    source.records[0].attachments = [TERMS]
    root = tmp_path / "out"
    connect(memory_workspace, "localfs", ui=NonInteractiveUI(), name="folder",
            settings={"root": str(root), "template": "{number}.{ext}", "files": "pdf", "write_data": False})
    run_sync(memory_workspace, accounts=["memory", "folder"])
    assert files(root) == ["INV-0000.pdf"]
    account = memory_workspace.account("folder")
    del account.settings["files"]
    memory_workspace.state.save_account(account)
    pdf_mtime = os.stat(root / "INV-0000.pdf").st_mtime_ns
    report = run_sync(memory_workspace, accounts=["folder"])
    assert report.exported["folder"] == {"delivered": 1}
    assert files(root) == ["INV-0000.pdf", "INV-0000_terms.pdf"]
    assert os.stat(root / "INV-0000.pdf").st_mtime_ns == pdf_mtime  # only what was missing was written


def test_files_honour_the_umask(memory_workspace: Workspace, tmp_path: Path) -> None:
    root = tmp_path / "out"
    setup(memory_workspace, root)
    old = os.umask(0o027)
    try:
        run_sync(memory_workspace, accounts=["memory", "folder"])
    finally:
        os.umask(old)
    assert oct(os.stat(root / "Acme BV/2026/INV-0000.pdf").st_mode & 0o777) == oct(0o640)


def test_temp_files_left_by_a_killed_run_are_cleaned_up(memory_workspace: Workspace, tmp_path: Path) -> None:
    root = tmp_path / "out"
    folder = root / "Acme BV/2026"
    folder.mkdir(parents=True)
    stale, live = folder / ".invoicesync-abc123.part", folder / ".invoicesync-def456.part"
    stale.write_bytes(b"half a PDF")
    live.write_bytes(b"a write in progress")
    os.utime(stale, (1, 1))
    setup(memory_workspace, root)
    run_sync(memory_workspace, accounts=["memory", "folder"])
    assert not stale.exists() and live.exists()


def test_deleted_documents_keep_their_files_or_move_them_aside(
        memory_workspace: Workspace, memory_plugins: tuple[Plugins, MemorySource, MemoryTarget],
        tmp_path: Path) -> None:
    _, source, _ = memory_plugins
    source.records = source.records[:3]
    source.records[1].attachments = [TERMS]
    keep, move = tmp_path / "keep", tmp_path / "move"
    for name, root, policy in (("kept", keep, "keep"), ("moved", move, "move")):
        connect(memory_workspace, "localfs", ui=NonInteractiveUI(), name=name,
                settings={"root": str(root), "template": "{year}/{number}.{ext}", "on_delete": policy})
    run_sync(memory_workspace)
    source.touch("m1", deleted=True)
    dry = run_sync(memory_workspace, dry_run=True)
    assert dry.exported["moved"] == {"planned": 1} and (move / "2026/INV-0001.pdf").exists()

    report = run_sync(memory_workspace)
    assert report.exported["kept"] == {"skipped": 1} and report.exported["moved"] == {"deleted": 1}
    assert "2026/INV-0001_terms.pdf" in files(keep)
    assert sorted(f for f in files(move) if "INV-0001" in f) == [
        "_deleted/2026/INV-0001.json", "_deleted/2026/INV-0001.pdf", "_deleted/2026/INV-0001_terms.pdf"]
    assert run_sync(memory_workspace).exported.get("moved") is None  # settled

    # Restored at the source: written afresh at its own path, not inside _deleted/.
    source.touch("m1", deleted=False)
    run_sync(memory_workspace)
    assert (move / "2026/INV-0001.pdf").exists() and (move / "2026/INV-0001_terms.pdf").exists()


def test_files_no_longer_asked_for_stay_the_documents_and_move_with_its_deletion(
        memory_workspace: Workspace, memory_plugins: tuple[Plugins, MemorySource, MemoryTarget],
        tmp_path: Path) -> None:
    _, source, _ = memory_plugins
    source.records = source.records[:1]
    source.records[0].attachments = [TERMS]
    root = tmp_path / "out"
    connect(memory_workspace, "localfs", ui=NonInteractiveUI(), name="folder",
            settings={"root": str(root), "template": "{number}.{ext}", "write_data": False, "on_delete": "move"})
    run_sync(memory_workspace, accounts=["memory", "folder"])
    connect(memory_workspace, "localfs", ui=NonInteractiveUI(), name="folder", settings={"files": "pdf"})
    run_sync(memory_workspace, accounts=["folder"])
    assert files(root) == ["INV-0000.pdf", "INV-0000_terms.pdf"]  # narrowing deletes nothing
    source.touch("m0", deleted=True)
    run_sync(memory_workspace)
    assert files(root) == ["_deleted/INV-0000.pdf", "_deleted/INV-0000_terms.pdf"]
