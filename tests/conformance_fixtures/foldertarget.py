"""A small, correct folder target for the kit's own tests — and switches that break it.

Like ``localfs`` it looks before it writes: a file already holding the same bytes is the
document's (unchanged); a name taken by other bytes gets a " (n)" suffix.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from invoicesync import (
    Account,
    Context,
    Delivery,
    DeliveryStatus,
    Document,
    PluginInfo,
    PluginKind,
    PushRequest,
    Settings,
    hookimpl,
)
from invoicesync.naming import render_path, with_suffix_number
from invoicesync.testing.conformance import StoredObject, TargetConformance, TargetEnv, objects_in_folder

TEMPLATE = "{number}.{ext}"


class FolderSettings(Settings):
    root: Path


@dataclass(eq=False)  # plugins must stay hashable for pluggy
class FolderTarget:
    write_blind: bool = False  #: never looks up: every push writes a new file
    overwrite_collisions: bool = False  #: a taken name is overwritten, whoever's file it was
    read_whole_file: bool = False  #: loads the PDF into memory before writing it
    hide_failures: bool = False  #: a write that failed is reported as delivered

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(kind=PluginKind.TARGET, title="Reference folder", api_version=(1, 1), settings=FolderSettings,
                          batch_size=8, concurrency=1)

    @hookimpl
    def auth(self, ctx: Context) -> list[object]:
        ctx.settings.root.mkdir(parents=True, exist_ok=True)
        return []

    @hookimpl
    def push_documents(self, account: Account, requests: list[PushRequest], ctx: Context) -> Iterator[Delivery]:
        for request in requests:
            document = request.document
            try:
                status, path = self._push(ctx, document)
            except OSError as exc:
                if self.hide_failures:
                    yield Delivery(document_id=document.id, target=account.name, version=document.version,
                                   status=DeliveryStatus.DELIVERED, target_path=render_path(TEMPLATE, document))
                    continue
                yield Delivery(document_id=document.id, target=account.name, version=document.version,
                               status=DeliveryStatus.FAILED, message=f"{type(exc).__name__}: {exc}")
                continue
            yield Delivery(document_id=document.id, target=account.name, version=document.version,
                           status=status, target_path=path, target_id=path)

    def _push(self, ctx: Context, document: Document) -> tuple[DeliveryStatus, str]:
        assert document.pdf is not None
        root: Path = ctx.settings.root
        planned = render_path(TEMPLATE, document)
        candidate, n = planned, 1
        while not self.overwrite_collisions and (root / candidate).is_file():
            if not self.write_blind and _sha(root / candidate) == document.pdf.sha256:
                return DeliveryStatus.UNCHANGED, candidate
            n += 1
            candidate = with_suffix_number(planned, n)
        chunks = [b"".join(ctx.blobs.iter_chunks(document.pdf.sha256))] if self.read_whole_file \
            else ctx.blobs.iter_chunks(document.pdf.sha256)
        fd, tmp = tempfile.mkstemp(dir=root, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as handle:
                for chunk in chunks:
                    handle.write(chunk)
            os.replace(tmp, root / candidate)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return DeliveryStatus.DELIVERED, candidate


def _sha(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def block_path(root: Path, document: Document, template: str, *, ext: str = "pdf") -> str:
    """Make ``document``'s planned file name unusable: a folder sits where the file would go."""
    blocker = root / render_path(template, document, ext=ext)
    blocker.mkdir(parents=True)
    return document.id


def unblock(root: Path) -> None:
    for path in sorted(root.rglob("*"), reverse=True):
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()


class FolderTargetSuite(TargetConformance):
    """The adapter for the reference folder target; ``knobs`` pick the bugs to switch on."""

    plugin = "folder"
    large_file_size = 16 * 1024 * 1024
    knobs: dict[str, bool] = {}

    def plugin_object(self) -> FolderTarget:
        return FolderTarget(**self.knobs)

    def account_settings(self, env: TargetEnv) -> dict[str, object]:
        return {"root": str(env.tmp_path / "folder")}

    def stored_objects(self, env: TargetEnv) -> list[StoredObject]:
        return objects_in_folder(env.tmp_path / "folder")

    def break_one_document(self, env: TargetEnv, documents: list[Document]) -> str | None:
        return block_path(env.tmp_path / "folder", documents[2], TEMPLATE)

    def repair(self, env: TargetEnv) -> None:
        unblock(env.tmp_path / "folder")
