"""Done-when proof: a Billit-like source whose documents carry extra attachments (signed terms as
PDF, a spreadsheet, a JPEG) and image-only purchases lands every file of every document exactly
once on the local folder, Dropbox and Drive — counted from each target's own store — and a
document deleted at the source then follows each target's on_delete policy."""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from invoicesync import PluginKind
from invoicesync.accounts import connect, connect_to_sandbox
from invoicesync.builtins import localfs
from invoicesync.cli._sync import print_summary
from invoicesync.context import NonInteractiveUI
from invoicesync.pipeline import EXIT_OK, run_sync
from invoicesync.plugins import Plugins
from invoicesync.state import DocumentFilter
from invoicesync.testing import MemorySource
from invoicesync.workspace import Workspace

dropbox_plugin = pytest.importorskip("invoicesync_dropbox.plugin")
gdrive_plugin = pytest.importorskip("invoicesync_gdrive.plugin")
from invoicesync_dropbox.sandbox import DropboxSandbox  # noqa: E402
from invoicesync_gdrive.sandbox import DriveSandbox  # noqa: E402

FOLDER_MIME = "application/vnd.google-apps.folder"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def billit_like(count: int) -> MemorySource:
    """Every third document has signed terms, a spreadsheet and a photo; every fourth is only a
    photo of a receipt (no PDF); some carry a UBL. All contents differ, so each is counted alone."""
    source = MemorySource(count)
    for i, record in enumerate(source.records):
        if i % 3 == 0:
            record.attachments = [(f"Terms {i}.pdf", "application/pdf", f"%PDF terms {i}".encode()),
                                  (f"lines-{i}.xlsx", XLSX, f"PK lines {i}".encode()),
                                  ("photo.jpg", "image/jpeg", f"\xff\xd8 photo {i}".encode("latin-1"))]
        if i % 4 == 1:
            record.pdf = None
            record.attachments = [("IMG_0001.JPG", "image/jpeg", f"\xff\xd8 receipt {i}".encode("latin-1"))]
        if i % 5 == 2:
            record.ubl = f"<Invoice>{i}</Invoice>".encode()
    return source


def expected(workspace: Workspace) -> Counter[str]:
    wanted: Counter[str] = Counter()
    for document in workspace.state.find_documents(DocumentFilter()):
        wanted.update(f.sha256 for f in document.files)
    return wanted


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def on_disk(root: Path, *, under_deleted: bool = False) -> Counter[str]:
    found: Counter[str] = Counter()
    for path in root.rglob("*"):
        deleted = path.relative_to(root).parts[0] == "_deleted"
        if path.is_file() and path.suffix != ".json" and deleted == under_deleted:
            found[_sha(path.read_bytes())] += 1
    return found


def in_dropbox(app: DropboxSandbox) -> Counter[str]:
    with app.namespace.lock:
        blobs = [e.blob for e in app.namespace.entries.values() if e.kind == "file" and e.blob is not None]
    return Counter(_sha(blob.read_bytes()) for blob in blobs)


def in_drive(app: DriveSandbox, *, under_deleted: bool = False) -> Counter[str]:
    with app.store.lock:
        files = [f for f in app.store.files.values() if f.mime_type != FOLDER_MIME and not f.trashed]
    deleted_folders = {f.id for f in app.store.files.values() if f.name == "_deleted"}
    return Counter(str(f.sha256) for f in files if _under(app, f, deleted_folders) == under_deleted)


def _under(app: DriveSandbox, file: Any, folders: set[str]) -> bool:
    parents = list(file.parents)
    while parents:
        parent = parents[0]
        if parent in folders:
            return True
        node = app.store.files.get(parent)
        parents = list(node.parents) if node is not None else []
    return False


def test_every_file_of_every_document_lands_once_on_every_file_target(
        workspace_factory: Callable[..., Workspace], serve_sandbox: Any, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    source = billit_like(12)
    dropbox_app, drive_app = DropboxSandbox(retry_after=0), DriveSandbox()
    plugins = Plugins.from_objects({"billit-like": (PluginKind.SOURCE, source),
                                    "dropbox": (PluginKind.TARGET, dropbox_plugin),
                                    "gdrive": (PluginKind.TARGET, gdrive_plugin)})
    plugins.register("localfs", localfs, kind=PluginKind.TARGET)
    workspace = workspace_factory(plugins=plugins)
    connect(workspace, "billit-like", ui=NonInteractiveUI())
    root = tmp_path / "archive"
    connect(workspace, "localfs", ui=NonInteractiveUI(), name="folder",
            settings={"root": str(root), "on_delete": "move"})
    connect_to_sandbox(workspace, "dropbox", serve_sandbox(dropbox_app), name="dropbox",
                       settings={"on_delete": "trash"})
    connect_to_sandbox(workspace, "gdrive", serve_sandbox(drive_app), name="drive", settings={"on_delete": "move"})
    try:
        report = run_sync(workspace)
        assert report.exit_code == EXIT_OK, report.as_dict()
        wanted = expected(workspace)
        # 9 PDFs (m1, m5, m9 are image-only), 3 x 3 attachments (m0, m3, m6), 3 receipts, 2 UBLs (m2, m7)
        assert sum(wanted.values()) == 9 + 9 + 3 + 2
        assert on_disk(root) == wanted
        assert in_dropbox(dropbox_app) == wanted
        assert in_drive(drive_app) == wanted
        for target in ("folder", "dropbox", "drive"):
            assert report.exported[target] == {"delivered": 12}, (target, report.skipped_reasons)

        again = run_sync(workspace)  # nothing twice
        assert again.exit_code == EXIT_OK and not again.exported
        assert on_disk(root) == in_dropbox(dropbox_app) == in_drive(drive_app) == wanted

        gone = next(r for r in source.records if r.source_id == "m0")
        gone_shas = Counter(f.sha256 for d in workspace.state.find_documents(DocumentFilter()) if d.source_id == "m0"
                            for f in d.files)
        source.touch("m0", deleted=True)
        deleted = run_sync(workspace)
        assert deleted.exit_code == EXIT_OK, deleted.as_dict()
        for target in ("folder", "dropbox", "drive"):
            assert deleted.exported[target] == {"deleted": 1}, (target, deleted.as_dict())
        print_summary(deleted)
        assert "→ dropbox: 1 deleted" in capsys.readouterr().out
        assert gone.deleted and sum(gone_shas.values()) == 4
        remaining = wanted - gone_shas
        assert on_disk(root) == remaining and on_disk(root, under_deleted=True) == gone_shas  # moved
        assert in_dropbox(dropbox_app) == remaining  # trashed (Dropbox keeps it restorable)
        assert Counter(_sha(e.blob.read_bytes()) for e in dropbox_app.namespace.deleted.values()
                       if e.kind == "file" and e.blob is not None) == gone_shas
        assert in_drive(drive_app) == remaining and in_drive(drive_app, under_deleted=True) == gone_shas  # moved
    finally:
        drive_app.store.close()
    assert os.path.isdir(root / "_deleted")
