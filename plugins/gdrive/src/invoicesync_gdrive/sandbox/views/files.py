"""``/drive/v3/files``: files.list (q, fields, pages, shared drives), files.get (``alt=media``
downloads the content), metadata-only create (folders) and update (parents, trash)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from typing import Any

from invoicesync.sandbox import Request, Response

from .. import fields as partial
from ..oauth import Grant
from ..query import parse
from ..store import FOLDER_MIME, ApiError, DriveFile
from .base import View, all_drives, csv, int_arg, json_object

DEFAULT_LIST_FIELDS = "kind,incompleteSearch,nextPageToken,files(kind,id,name,mimeType)"
_ORDER_KEYS = {"createdTime": "created", "modifiedTime": "modified", "name": "name"}


class FilesView(View):
    def list_files(self, request: Request, grant: Grant) -> Response:
        predicate = parse(request.arg("q") or "trashed = false or trashed = true")
        size = int_arg(request, "pageSize", 100, 1, None)
        size = min(size, 1000)
        corpora = request.arg("corpora") or "user"
        include_shared = request.arg("includeItemsFromAllDrives") == "true"
        drive_id = request.arg("driveId")
        if corpora == "drive":
            if not drive_id or not include_shared:
                raise ApiError(400, "invalid", "corpora=drive needs driveId and includeItemsFromAllDrives=true")
            if drive_id not in self.store.shared_drives:
                raise ApiError(404, "notFound", f"Shared drive not found: {drive_id}", location="driveId")
        elif corpora not in {"user", "allDrives", "domain"}:
            raise ApiError(400, "invalid", f"Invalid Value: corpora={corpora}", location="corpora")
        found = self.store.search(predicate, include_shared=include_shared,
                                  drive_id=drive_id if corpora == "drive" else None)
        found = _order(found, request.arg("orderBy"))
        offset = _page_offset(request)
        page = found[offset:offset + size]
        body: dict[str, Any] = {"kind": "drive#fileList", "incompleteSearch": False,
                                "files": [f.resource() for f in page]}
        if offset + size < len(found):
            body["nextPageToken"] = _page_token(request, offset + size)
        selection = partial.parse_fields(request.arg("fields") or DEFAULT_LIST_FIELDS)
        return Response.json(partial.apply(body, selection))

    def get_file(self, request: Request, grant: Grant) -> Response:
        file = self.store.get(request.params["id"], all_drives=all_drives(request))
        if request.arg("alt") == "media":
            if file.size is None:
                raise ApiError(403, "fileNotDownloadable", "Only files with binary content can be downloaded.")
            return Response(200, _read_file(self.store.content_path(file.id)), {"Content-Type": file.mime_type})
        return self.app._file(request, file)

    def create_metadata(self, request: Request, grant: Grant) -> Response:
        metadata = json_object(request)
        self.app._check_quota(grant, metadata.get("parents"), request)
        file = self.store.create(metadata, None, None, all_drives=all_drives(request))
        return self.app._file(request, file)

    def patch_metadata(self, request: Request, grant: Grant) -> Response:
        file = self.store.get(request.params["id"], all_drives=all_drives(request))
        self.store.update(file, json_object(request), None, csv(request.arg("addParents")),
                          csv(request.arg("removeParents")), all_drives=all_drives(request))
        return self.app._file(request, file)


def _order(files: list[DriveFile], order_by: str | None) -> list[DriveFile]:
    result = sorted(files, key=lambda f: (f.created, f.id))
    for clause in reversed([c.strip() for c in (order_by or "").split(",") if c.strip()]):
        key, _, direction = clause.partition(" ")
        if key == "folder":
            result.sort(key=lambda f: f.mime_type != FOLDER_MIME, reverse=direction == "desc")
            continue
        attr = _ORDER_KEYS.get(key)
        if attr is None:
            raise ApiError(400, "invalid", f"Invalid Value: orderBy={order_by}", location="orderBy")
        result.sort(key=lambda f, a=attr: getattr(f, a), reverse=direction.strip() == "desc")  # type: ignore[misc]
    return result


def _query_hash(request: Request) -> str:
    parts = [request.arg(k) or "" for k in ("q", "orderBy", "corpora", "driveId", "includeItemsFromAllDrives")]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:12]


def _page_token(request: Request, offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset, "h": _query_hash(request)}).encode()).decode()


def _page_offset(request: Request) -> int:
    token = request.arg("pageToken")
    if not token:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        if data["h"] != _query_hash(request):
            raise ValueError
        return int(data["o"])
    except (ValueError, KeyError, TypeError):
        raise ApiError(400, "invalid", "Invalid Value", location="pageToken") from None


def _read_file(path: Any) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(1024 * 1024):
            yield chunk
