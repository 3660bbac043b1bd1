"""``/drive/v3/changes``: changes.getStartPageToken and changes.list, per corpus (the user's
My Drive, with shared drives if asked, or one shared drive), to ``newStartPageToken``."""

from __future__ import annotations

from typing import Any

from invoicesync.sandbox import Request, Response

from .. import fields as partial
from ..oauth import Grant
from ..store import ApiError
from .base import View, all_drives, csv, int_arg

DEFAULT_CHANGE_FIELDS = ("kind,nextPageToken,newStartPageToken,"
                         "changes(kind,changeType,time,removed,fileId,file(kind,id,name,mimeType))")
_SPACES = {"drive", "appDataFolder", "photos"}


class ChangesView(View):
    def _corpus(self, request: Request) -> str:
        """``user`` (My Drive and, if asked, shared drives) or the shared drive of ``driveId``."""
        drive_id = request.arg("driveId")
        if drive_id is None:
            return "user"
        if not all_drives(request):
            raise ApiError(400, "invalid", "driveId needs supportsAllDrives=true", location="driveId")
        if drive_id not in self.store.shared_drives:
            raise ApiError(404, "notFound", f"Shared drive not found: {drive_id}", location="driveId")
        return drive_id

    def start_page_token(self, request: Request, grant: Grant) -> Response:
        corpus = self._corpus(request)
        with self.store.lock:
            token = self.store.change_token(corpus, len(self.store.changes))
        body = {"kind": "drive#startPageToken", "startPageToken": token}
        return Response.json(partial.apply(body, partial.parse_fields(request.arg("fields") or "*")))

    def list_changes(self, request: Request, grant: Grant) -> Response:
        token = request.arg("pageToken")
        if not token:
            raise ApiError(400, "required", "Required parameter: pageToken", location="pageToken")
        corpus = self._corpus(request)
        size = int_arg(request, "pageSize", 100, 1, 1000)
        spaces = csv(request.arg("spaces") or "drive")
        if not spaces or not set(spaces) <= _SPACES:
            raise ApiError(400, "invalid", f"Invalid Value: spaces={request.arg('spaces')}", location="spaces")
        selection = partial.parse_fields(request.arg("fields") or DEFAULT_CHANGE_FIELDS)
        position = self.store.read_change_token(token, corpus)
        if position is None:  # not ours, for another corpus, or expired: start over from a new token
            raise ApiError(400, "invalid", "Invalid Value", location="pageToken")
        shared = request.arg("includeItemsFromAllDrives") == "true" and all_drives(request)
        removed = request.arg("includeRemoved") != "false"
        my_drive_only = request.arg("restrictToMyDrive") == "true"

        def wanted(change: Any) -> bool:
            if "drive" not in spaces or (change.removed and not removed):
                return False
            if corpus != "user":
                return bool(change.drive_id == corpus)
            return not change.drive_id or (shared and not my_drive_only)

        found, after = self.store.changes_from(position, wanted, size)
        changes = []
        for change, file in found:
            item: dict[str, Any] = {"kind": "drive#change", "changeType": "file", "time": change.time,
                                    "removed": file is None, "fileId": change.file_id}
            if file is not None:
                item["file"] = file.resource()
            changes.append(item)
        body: dict[str, Any] = {"kind": "drive#changeList", "changes": changes}
        with self.store.lock:
            end = len(self.store.changes)
        if after >= end:
            body["newStartPageToken"] = self.store.change_token(corpus, end)
        else:
            body["nextPageToken"] = self.store.change_token(corpus, after)
        return Response.json(partial.apply(body, selection))
