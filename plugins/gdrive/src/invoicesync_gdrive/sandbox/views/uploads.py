"""``/upload/drive/v3/files``: create or replace content with ``uploadType=media|multipart|
resumable``, and the resumable session URIs (PUT: chunks, 308 + Range, status queries). The
protocol itself (bodies, sessions) is ``..uploads``; this maps it onto the store."""

from __future__ import annotations

import json
from typing import Any

from invoicesync.sandbox import Request, Response

from .. import fields as partial
from ..oauth import Grant
from ..store import ApiError, Content, DriveFile
from ..uploads import Session
from .base import DEFAULT_FILE_FIELDS, View, all_drives, csv


class UploadsView(View):
    def upload(self, request: Request, grant: Grant) -> Response:
        file_id = request.params.get("id")
        drives = all_drives(request)
        existing = self.store.get(file_id, all_drives=drives) if file_id else None
        kind = request.arg("uploadType")
        uploads = self.app.uploads
        if kind == "resumable":
            if existing is None:
                self.app._check_quota(grant, _peek_parents(request), request)
            uri = uploads.open(request, file_id, drives, request.base_url)
            return Response(200, b"", {"Location": uri, "X-GUploader-UploadID": uri.rsplit("=", 1)[1]})
        if kind == "multipart":
            metadata, content, media_type = uploads.multipart(request)
        elif kind == "media":
            metadata, content, media_type = uploads.simple(request)
        else:
            raise ApiError(400, "invalid", f"Invalid Value: uploadType={kind}", location="uploadType",
                               location_type="parameter")
        if existing is not None:
            if "mimeType" not in metadata:
                metadata["mimeType"] = media_type
            file = self.store.update(existing, metadata, content, csv(request.arg("addParents")),
                                     csv(request.arg("removeParents")), all_drives=drives)
            return self.app._file(request, file)
        self.app._check_quota(grant, metadata.get("parents"), request)
        return self.app._file(request, self.store.create(metadata, content, media_type, all_drives=drives))

    def session_put(self, request: Request, grant: Grant) -> Response:
        uploads = self.app.uploads
        session = uploads.session(request.arg("upload_id"))
        outcome = uploads.put(request, session, self._finish_session)
        if outcome.file is None:
            headers = {"Range": f"bytes=0-{outcome.received - 1}"} if outcome.received else {}
            headers["X-GUploader-UploadID"] = session.id
            return Response(308, b"", headers)
        fields_arg = session.params.get("fields") or DEFAULT_FILE_FIELDS
        return Response.json(partial.apply(outcome.file.resource(), partial.parse_fields(fields_arg)), 200)

    def _finish_session(self, session: Session) -> DriveFile:
        content: Content = session.content
        if session.file_id:
            file = self.store.get(session.file_id, all_drives=session.all_drives)
            metadata = {"mimeType": session.media_type, **session.metadata}
            return self.store.update(file, metadata, content, csv(session.params.get("addParents")),
                                     csv(session.params.get("removeParents")), all_drives=session.all_drives)
        return self.store.create(session.metadata, content, session.media_type, all_drives=session.all_drives)


def _peek_parents(request: Request) -> Any:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return None
    return body.get("parents") if isinstance(body, dict) else None
