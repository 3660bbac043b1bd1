"""The invoicesync target conformance suite, run against the real plugin and its Drive sandbox.

Every check runs through core ``run_sync`` over loopback HTTP: re-push after a lost ledger,
colliding names, a 32 MiB file in bounded memory (a resumable upload), a crash between the write
and the ledger, a lost answer to a create, and a per-document failure.
"""

from __future__ import annotations

from invoicesync.testing.conformance import StoredObject, TargetConformance, TargetEnv
from invoicesync_gdrive.sandbox import DriveSandbox
from invoicesync_gdrive.sandbox.store import FOLDER_MIME, DriveFile


class TestConformance(TargetConformance):
    plugin = "gdrive"
    # Content writes create files here (multipart creates, and resumable sessions being opened);
    # replacing a file's content is a PATCH to /upload/drive/v3/files/{id}, seen as a new version.
    on_delete = {"keep": "skipped", "move": "deleted", "trash": "deleted"}
    write_path = r"^/upload/drive/v3/files$"
    write_method = "POST"

    def stored_objects(self, env: TargetEnv) -> list[StoredObject]:
        app = env.app
        assert isinstance(app, DriveSandbox)
        with app.store.lock:
            files = list(app.store.files.values())
        by_id = {f.id: f for f in files}
        return [StoredObject(_path(f, by_id), f.sha256 or "", f.size if f.size is not None else -1, str(f.version))
                for f in files if f.mime_type != FOLDER_MIME and not f.trashed]


def _path(file: DriveFile, by_id: dict[str, DriveFile]) -> str:
    """The file's path from the top of its drive: folder names up the ``parents`` chain."""
    names = [file.name]
    parent = by_id.get(file.parents[0]) if file.parents else None
    while parent is not None:
        names.append(parent.name)
        parent = by_id.get(parent.parents[0]) if parent.parents else None
    return "/".join(reversed(names))
