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
