"""``push_documents`` for Drive: each document's PDF (and its UBL beside it) into the folder tree."""

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
    PushRequest,
    RemoteError,
)
from invoicesync.naming import NameRules, render_path, sibling

from .auth import build_auth
from .client import DriveClient
from .errors import is_not_found
from .folders import FolderTree
from .settings import GDriveSettings
from .upload import FileResult, FileSpec, Uploader

#: Drive takes almost any character in a name; only our own separator and control characters go.
DRIVE_RULES = NameRules(max_bytes=255, forbidden="/\\", reserved=frozenset())


class Exporter:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.settings: GDriveSettings = ctx.settings
        self.client = DriveClient(ctx, self.settings, None if ctx.dry_run else build_auth(ctx, self.settings))
        self.tree = FolderTree(self.client, ctx.kv, ctx.account.name)
        self.uploader = Uploader(self.client, ctx)

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
        main = document.pdf or document.ubl
        if main is None:
            return self._delivery(request, DeliveryStatus.SKIPPED,
                                  message="the document has neither a PDF nor a UBL file")
        path = render_path(self.settings.template, document, ext="pdf" if document.pdf else "xml", rules=DRIVE_RULES)
        *folders, name = path.split("/")
        specs = [FileSpec(document.id, "pdf" if document.pdf else "ubl", name, main)]
        if document.pdf and document.ubl and self.settings.write_ubl:
            specs.append(FileSpec(document.id, "ubl", sibling(name, "xml"), document.ubl, keep_apart=False))
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
        files = {spec.role: {"id": r.file["id"], "name": r.file["name"], "md5": r.file.get("md5Checksum")}
                 for spec, r in zip(specs, results, strict=True)}
        return self._delivery(request, DeliveryStatus.DELIVERED if written else DeliveryStatus.UNCHANGED, path=path,
                              target_id=results[0].file["id"], content_hash=main.sha256,
                              extra={"files": files, "folder_id": (results[0].file.get("parents") or [None])[0]})

    def _upload_all(self, specs: list[FileSpec], folders: list[str], known: dict[str, Any]) -> list[FileResult]:
        folder_id = self.tree.ensure(folders)
        results: list[FileResult] = []
        for spec in specs:
            if results:  # the UBL goes beside the PDF under the name the PDF actually got
                spec = replace(spec, name=sibling(results[0].file["name"], "xml"))
            results.append(self.uploader.sync(spec, folder_id, (known.get(spec.role) or {}).get("id")))
        return results

    def _delivery(self, request: PushRequest, status: DeliveryStatus, *, path: str | None = None,
                  message: str | None = None, target_id: str | None = None, content_hash: str | None = None,
                  extra: dict[str, Any] | None = None) -> Delivery:
        document = request.document
        return Delivery(document_id=document.id, target=self.ctx.account.name, version=document.version,
                        status=status, target_id=target_id, target_path=path, content_hash=content_hash,
                        message=message, extra=extra or {})
