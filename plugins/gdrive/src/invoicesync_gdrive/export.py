"""``push_documents`` for Drive: every file of each document into the folder tree.

The main file (the PDF, else the UBL, else e.g. the photo of a receipt) gets the template's name;
the UBL beside a PDF ``.xml``; each attachment the main file's name plus its own. Each file is
found again by its ``appProperties`` (document and role), so a document offered again after the
account's ``files`` option widened gets only what is missing. Deletions: ``deletion.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from invoicesync import (
    AuthError,
    ConfigError,
    Context,
    Delivery,
    DeliveryStatus,
    DocumentError,
    FileRef,
    FileRole,
    PushRequest,
    RemoteError,
)
from invoicesync.naming import file_ext, main_file, plan_files, render_path

from .auth import build_auth
from .client import DriveClient
from .deletion import Deletions
from .errors import is_not_found
from .folders import FolderTree
from .listing import listings_for
from .names import DRIVE_RULES
from .settings import GDriveSettings
from .upload import FileResult, FileSpec, Uploader, file_roles


def exporter_for(ctx: Context) -> Exporter:
    """The account's exporter for the run: one Drive client and one ``TokenAuth`` (whose memo of
    the token set spares a secret-store read per batch) for every batch and thread, not per batch."""
    return ctx.resource(("gdrive", "exporter"), lambda: Exporter(ctx))


class Exporter:
    """Pushes batches for one account. Holds nothing per batch: one serves every thread of the run."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.settings = ctx.settings_as(GDriveSettings)
        self.client = DriveClient(ctx, self.settings, None if ctx.dry_run else build_auth(ctx, self.settings))
        self.tree = FolderTree(self.client, ctx.kv, ctx.account.name)
        self.listings = listings_for(ctx)
        self.uploader = Uploader(self.client, ctx, self.listings)
        self.deletions = Deletions(self.client, self.tree, ctx)

    def push(self, requests: list[PushRequest]) -> Iterator[Delivery]:
        for request in requests:
            try:
                yield self._push_one(request)
            except AuthError:
                raise  # the login is broken for every document: fail the batch, say "connect again"
            except (DocumentError, RemoteError, ConfigError, OSError) as exc:
                yield self._delivery(request, DeliveryStatus.FAILED, message=str(exc))

    def _push_one(self, request: PushRequest) -> Delivery:
        document = request.document
        if document.deleted:
            delivery = self.deletions.apply(request)
            # The deletion moved or trashed files this run may have listed: list that folder again.
            folder_id = request.previous.extra.get("folder_id") if request.previous else None
            self.listings.forget(folder_id if isinstance(folder_id, str) else None)
            return delivery
        files = self._files(request)
        main = main_file(files)
        if main is None:
            return self._delivery(request, DeliveryStatus.SKIPPED, message="the document has no file")
        path = render_path(self.settings.template, document, ext=file_ext(main), rules=DRIVE_RULES)
        *folders, name = path.split("/")
        role_of = {id(ref): role for ref, role in zip(files, file_roles(files), strict=True)}
        specs = [FileSpec(document.id, role_of[id(ref)], planned, ref, keep_apart=index == 0)
                 for index, (planned, ref) in enumerate(plan_files(name, files, DRIVE_RULES))]
        if self.ctx.dry_run:
            return self._delivery(request, DeliveryStatus.PLANNED, path=path,
                                  message="would upload " + ", ".join(s.name for s in specs))
        known = (request.previous.extra.get("files") or {}) if request.previous else {}
        try:
            results = self._upload_all(specs, folders, known)
        except RemoteError as exc:
            if not is_not_found(exc):
                raise
            # A cached folder id may point at a folder someone deleted: resolve the path again, once.
            self.ctx.log.info("a folder of %s is gone; resolving the path again", path)
            self.tree.forget(folders)
            results = self._upload_all(specs, folders, known)
        written = any(r.written for r in results)
        path = "/".join([*folders, results[0].file["name"]])  # with its collision suffix, if it got one
        # Files an earlier delivery made that are no longer asked for (a narrower `files` option) stay
        # in Drive and stay this document's: a later deletion applies to them too.
        recorded = {role: item for role, item in known.items() if isinstance(item, dict) and item.get("id")}
        recorded.update({spec.role: {"id": r.file["id"], "name": r.file["name"], "md5": r.file.get("md5Checksum")}
                         for spec, r in zip(specs, results, strict=True)})
        return self._delivery(request, DeliveryStatus.DELIVERED if written else DeliveryStatus.UNCHANGED, path=path,
                              target_id=results[0].file["id"], content_hash=main.sha256,
                              extra={"files": recorded, "folder_id": (results[0].file.get("parents") or [None])[0]})

    def _files(self, request: PushRequest) -> list[FileRef]:
        """``request.files``; ``write_ubl = false`` (older than the core's ``files`` option) still
        leaves out a UBL that has a PDF beside it."""
        files = request.files
        if self.settings.write_ubl or not any(f.role is FileRole.PDF for f in files):
            return files
        return [f for f in files if f.role is not FileRole.UBL]

    def _upload_all(self, specs: list[FileSpec], folders: list[str], known: dict[str, Any]) -> list[FileResult]:
        folder_id = self.tree.ensure(folders)
        results: list[FileResult] = []
        for index, spec in enumerate(specs):
            if results:  # the others go beside the main file, under the name it actually got
                beside = plan_files(results[0].file["name"], [s.ref for s in specs], DRIVE_RULES)
                spec = replace(spec, name=beside[index][0])
            results.append(self.uploader.sync(spec, folder_id, (known.get(spec.role) or {}).get("id")))
        return results

    def _delivery(self, request: PushRequest, status: DeliveryStatus, *, path: str | None = None,
                  message: str | None = None, target_id: str | None = None, content_hash: str | None = None,
                  extra: dict[str, Any] | None = None) -> Delivery:
        document = request.document
        return Delivery(document_id=document.id, target=self.ctx.account.name, version=document.version,
                        status=status, target_id=target_id, target_path=path, content_hash=content_hash,
                        message=message, extra=extra or {})
