"""A small, correct folder target for the kit's own tests — and switches that break it.

Like ``localfs`` it looks before it writes: a file already holding the same bytes is the
document's (unchanged); a name taken by other bytes gets a " (n)" suffix. It writes every file
of ``PushRequest.files`` beside the main one, and a deletion keeps the files or moves them into
``_deleted/`` (``on_delete``).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from invoicesync import (
    Account,
    Context,
    Delivery,
    DeliveryStatus,
    Document,
    FileRef,
    PluginInfo,
    PluginKind,
    PushRequest,
    Settings,
    hookimpl,
)
from invoicesync.naming import file_ext, main_file, plan_files, render_path, with_suffix_number
from invoicesync.testing.conformance import StoredObject, TargetConformance, TargetEnv, objects_in_folder

TEMPLATE = "{number}.{ext}"


class FolderSettings(Settings):
    root: Path
    on_delete: Literal["keep", "move"] = "keep"


@dataclass(eq=False)  # plugins must stay hashable for pluggy
class FolderTarget:
    write_blind: bool = False  #: never looks up: every push writes a new file
    overwrite_collisions: bool = False  #: a taken name is overwritten, whoever's file it was
    read_whole_file: bool = False  #: loads the PDF into memory before writing it
    hide_failures: bool = False  #: a write that failed is reported as delivered
    only_main_file: bool = False  #: writes the main file, none of the others in ``request.files``
    ignore_files_option: bool = False  #: writes all the document's files, not ``request.files``
    fake_deletes: bool = False  #: reports a deletion as done and leaves the files where they are
    api_1: bool = False  #: declares hook API 1 (no ``request.files``, never handed a deletion)

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(kind=PluginKind.TARGET, title="Reference folder", api_version=(1, 1 if self.api_1 else 2),
                          settings=FolderSettings, batch_size=8, concurrency=1)

    @hookimpl
    def auth(self, ctx: Context) -> list[object]:
        ctx.settings.root.mkdir(parents=True, exist_ok=True)
        return []

    @hookimpl
    def push_documents(self, account: Account, requests: list[PushRequest], ctx: Context) -> Iterator[Delivery]:
        for request in requests:
            document = request.document
            if document.deleted:
                yield self._delete(ctx, account, request)
                continue
            files = list(document.files if self.ignore_files_option else request.files)
            if self.api_1 and document.pdf is not None:
                files = [document.pdf]
            try:
                status, path = self._push(ctx, document, files)
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

    def _push(self, ctx: Context, document: Document, files: list[FileRef]) -> tuple[DeliveryStatus, str]:
        main = main_file(files)
        assert main is not None
        root: Path = ctx.settings.root
        planned = render_path(TEMPLATE, document, ext=file_ext(main))
        candidate, n, found = planned, 1, False
        while not self.overwrite_collisions and (root / candidate).is_file():
            if not self.write_blind and _sha(root / candidate) == main.sha256:
                found = True
                break
            n += 1
            candidate = with_suffix_number(planned, n)
        wrote = False
        for path, ref in plan_files(candidate, files)[:1 if self.only_main_file else None]:
            if (found or ref is not main) and not self.write_blind and (root / path).is_file() \
                    and _sha(root / path) == ref.sha256:
                continue
            self._write(ctx, root, path, ref)
            wrote = True
        return (DeliveryStatus.DELIVERED if wrote else DeliveryStatus.UNCHANGED), candidate

    def _write(self, ctx: Context, root: Path, path: str, ref: FileRef) -> None:
        chunks = [b"".join(ctx.blobs.iter_chunks(ref.sha256))] if self.read_whole_file \
            else ctx.blobs.iter_chunks(ref.sha256)
        fd, tmp = tempfile.mkstemp(dir=root, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as handle:
                for chunk in chunks:
                    handle.write(chunk)
            os.replace(tmp, root / path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def _delete(self, ctx: Context, account: Account, request: PushRequest) -> Delivery:
        document, previous = request.document, request.previous
        outcome = Delivery(document_id=document.id, target=account.name, version=document.version,
                           status=DeliveryStatus.DELETED)
        if ctx.settings.on_delete == "keep":
            return outcome.model_copy(update={"status": DeliveryStatus.SKIPPED,
                                              "message": "deleted at the source; on_delete = keep"})
        if self.fake_deletes or previous is None or not previous.target_path:
            return outcome
        root: Path = ctx.settings.root
        for path, ref in plan_files(previous.target_path, request.files or document.files):
            source = root / path
            if source.is_file() and _sha(source) == ref.sha256:
                aside = root / "_deleted" / path
                aside.parent.mkdir(parents=True, exist_ok=True)
                os.replace(source, aside)
        return outcome


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
    on_delete = {"keep": "skipped", "move": "deleted"}
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
