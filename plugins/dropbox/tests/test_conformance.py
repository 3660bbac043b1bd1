"""The core target conformance suite, run against the real plugin over HTTP against its sandbox.

The adapter reads what the sandbox's namespace holds, and breaks one document the way Dropbox
itself would fail a single entry of a batch commit (the account runs out of space), because a
fault on the write endpoint fails a whole ``finish_batch_v2``, and with it every document of
the batch, which is right for a batch-wide error but not what the check is about.
"""

from __future__ import annotations

import hashlib

from invoicesync import Document
from invoicesync.testing.conformance import StoredObject, TargetConformance, TargetEnv
from invoicesync_dropbox.sandbox import DropboxSandbox

MiB = 1024 * 1024


def _sandbox(env: TargetEnv) -> DropboxSandbox:
    assert isinstance(env.app, DropboxSandbox)
    return env.app


def _sha256(path: object) -> str:
    digest = hashlib.sha256()
    with open(str(path), "rb") as handle:
        while chunk := handle.read(MiB):
            digest.update(chunk)
    return digest.hexdigest()


class TestConformance(TargetConformance):
    plugin = "dropbox"
    # Every route that commits a file: a lone upload, a large session's finish, a batch commit.
    on_delete = {"keep": "skipped", "move": "deleted", "trash": "deleted"}
    write_path = r"/2/files/(upload|upload_session/finish|upload_session/finish_batch_v2)$"

    def stored_objects(self, env: TargetEnv) -> list[StoredObject]:
        namespace = _sandbox(env).namespace
        with namespace.lock:
            files = [e for e in namespace.entries.values() if e.kind == "file" and e.blob is not None]
        return [StoredObject(e.display, _sha256(e.blob), e.size, e.rev) for e in files]

    def break_one_document(self, env: TargetEnv, documents: list[Document]) -> str | None:
        """Leave room for all files but one byte: the batch commit fails exactly one entry with
        ``insufficient_space``, which entry depends on the commit order, so no id is returned."""
        namespace = _sandbox(env).namespace
        total = sum(f.size for d in documents for f in d.files)
        namespace.quota_bytes = namespace.used() + total - 1
        return None

    def repair(self, env: TargetEnv) -> None:
        _sandbox(env).namespace.quota_bytes = None
        super().repair(env)
