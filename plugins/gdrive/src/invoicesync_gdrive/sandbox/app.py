"""The Drive sandbox: Drive API v3 files endpoints, uploads and OAuth on one loopback port.

Routes (as Google serves them, relative to one base URL):
    GET   /drive/v3/files                 files.list: q, fields, pageSize/pageToken, shared drives
    POST  /drive/v3/files                 metadata-only create (folders)
    GET   /drive/v3/files/{id}            files.get (``alt=media`` downloads the content)
    PATCH /drive/v3/files/{id}            metadata update, addParents/removeParents, trash
    GET   /drive/v3/changes/startPageToken changes.getStartPageToken (per corpus: user or driveId)
    GET   /drive/v3/changes               changes.list from a page token, to newStartPageToken
    POST  /upload/drive/v3/files          create with uploadType=media|multipart|resumable
    PATCH /upload/drive/v3/files/{id}     replace content, same upload types
    PUT   /upload/drive/v3/files[/{id}]   a resumable session URI: chunks, 308 + Range, status query
    GET   /o/oauth2/v2/auth, POST /token  OAuth (consent is auto-approved)
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterator
from typing import Any

from invoicesync.sandbox import RedirectRegistry, Request, Response, SandboxApp

from . import fields as partial
from .oauth import CLIENT_ID, CLIENT_SECRET, LOOPBACK_REDIRECTS, Grant, OAuthServer
from .query import QueryError, parse
from .store import FOLDER_MIME, MY_DRIVE_ROOT, ApiError, Content, DriveFile, DriveStore
from .uploads import SMALL_UPLOAD_LIMIT, Session, Uploads, whole_body

SHARED_DRIVE_ID = "0ASandboxSharedDrive"
DEFAULT_FILE_FIELDS = "kind,id,name,mimeType"
DEFAULT_LIST_FIELDS = "kind,incompleteSearch,nextPageToken,files(kind,id,name,mimeType)"
DEFAULT_CHANGE_FIELDS = ("kind,nextPageToken,newStartPageToken,"
                         "changes(kind,changeType,time,removed,fileId,file(kind,id,name,mimeType))")
_SPACES = {"drive", "appDataFolder", "photos"}
_RATE_REASONS = {"userRateLimitExceeded", "rateLimitExceeded"}
_DEFAULT_REASONS = {400: "badRequest", 401: "authError", 403: "forbidden", 404: "notFound",
                    429: "rateLimitExceeded", 500: "backendError", 502: "backendError", 503: "backendError",
                    504: "backendError"}
_ORDER_KEYS = {"createdTime": "created", "modifiedTime": "modified", "name": "name"}

Handler = Callable[[Request, Grant], Response]


class DriveSandbox(SandboxApp):
    name = "gdrive"

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__()
        options = options or {}
        self.store = DriveStore(shared_drives={SHARED_DRIVE_ID: "Invoices (shared drive)"})
        self.oauth = OAuthServer(token_ttl=float(options.get("token_ttl", 3600)))
        # redirect_uris, lenient_redirects: exact registrations besides the Desktop-app loopback
        self.oauth.redirects = RedirectRegistry.from_options(
            {**options, "redirect_uris": [*LOOPBACK_REDIRECTS, *_listed(options.get("redirect_uris"))]},
            LOOPBACK_REDIRECTS, any_loopback_port=True)
        # Strict by default; {"small_upload_limit": None} lifts Drive's 5 MB cap on simple/multipart uploads.
        self.uploads = Uploads(self.store, small_upload_limit=options.get("small_upload_limit", SMALL_UPLOAD_LIMIT))
        self.route("GET", r"/o/oauth2(?:/v2)?/auth", self.oauth.authorize)
        self.route("POST", r"/token", self.oauth.token)
        self.route("GET", r"/drive/v3/files", self._authed(self.list_files))
        self.route("POST", r"/drive/v3/files", self._authed(self.create_metadata))
        self.route("GET", r"/drive/v3/changes/startPageToken", self._authed(self.start_page_token))
        self.route("GET", r"/drive/v3/changes", self._authed(self.list_changes))
        self.route("GET", r"/drive/v3/files/(?P<id>[^/]+)", self._authed(self.get_file))
        self.route("PATCH", r"/drive/v3/files/(?P<id>[^/]+)", self._authed(self.patch_metadata))
        self.route("POST", r"/upload/drive/v3/files", self._authed(self.upload))
        self.route("PATCH", r"/upload/drive/v3/files/(?P<id>[^/]+)", self._authed(self.upload))
        # A session URI is its own credential (as on Google): no token needed for the PUTs.
        self.route("PUT", r"/upload/drive/v3/files(?:/(?P<id>[^/]+))?", self._authed(self.session_put, public=True))

    # -- the demo account --------------------------------------------------------------------

    def account_settings(self, base_url: str) -> dict[str, Any]:
        return {"auth_mode": "user", "client_id": CLIENT_ID, "api_url": f"{base_url}/drive/v3",
                "upload_url": f"{base_url}/upload/drive/v3", "authorize_url": f"{base_url}/o/oauth2/v2/auth",
                "token_url": f"{base_url}/token"}

    def account_secrets(self) -> dict[str, str]:
        import time

        body = self.oauth.issue("user")
        token = {"access_token": body["access_token"], "refresh_token": body["refresh_token"],
                 "expires_at": time.time() + body["expires_in"], "token_type": "Bearer", "scope": body["scope"]}
        return {"oauth_token": json.dumps(token), "client_secret": CLIENT_SECRET}

    def service_account_key(self, base_url: str) -> dict[str, str]:
        return self.oauth.service_account_key(f"{base_url}/token")

    # -- errors in Drive's shape -------------------------------------------------------------

    def error(self, status: int, code: str, message: str, request: Request | None = None) -> Response:
        reason = code if code and code[0].islower() else _DEFAULT_REASONS.get(status, "badRequest")
        domain = "usageLimits" if reason in _RATE_REASONS else "global"
        if message == "injected fault":
            message = {"userRateLimitExceeded": "User rate limit exceeded.",
                       "rateLimitExceeded": "Rate Limit Exceeded"}.get(reason, f"Injected {reason}.")
        return _drive_error(ApiError(status, reason, message, domain=domain))

    def _authed(self, handler: Handler, *, public: bool = False) -> Callable[[Request], Response]:
        def guarded(request: Request) -> Response:
            grant = Grant("", "", 0, kind="session") if public else self.oauth.check(request)
            if grant is None:
                for _ in request.iter_body():
                    pass
                return _drive_error(ApiError(401, "authError", "Invalid Credentials", location="Authorization",
                                                 location_type="header"))
            try:
                return handler(request, grant)
            except ApiError as problem:
                return _drive_error(problem)
            except QueryError as exc:
                return _drive_error(ApiError(400, "invalid", f"Invalid Value: {exc}", location="q",
                                                 location_type="parameter"))
            except partial.FieldsError as exc:
                return _drive_error(ApiError(400, "invalidParameter", str(exc), location="fields",
                                                 location_type="parameter"))
        return guarded

    # -- files -------------------------------------------------------------------------------

    def list_files(self, request: Request, grant: Grant) -> Response:
        predicate = parse(request.arg("q") or "trashed = false or trashed = true")
        size = _int_arg(request, "pageSize", 100, 1, None)
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

    # -- changes -----------------------------------------------------------------------------

    def _corpus(self, request: Request) -> str:
        """``user`` (My Drive and, if asked, shared drives) or the shared drive of ``driveId``."""
        drive_id = request.arg("driveId")
        if drive_id is None:
            return "user"
        if not _all_drives(request):
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
        size = _int_arg(request, "pageSize", 100, 1, 1000)
        spaces = _csv(request.arg("spaces") or "drive")
        if not spaces or not set(spaces) <= _SPACES:
            raise ApiError(400, "invalid", f"Invalid Value: spaces={request.arg('spaces')}", location="spaces")
        selection = partial.parse_fields(request.arg("fields") or DEFAULT_CHANGE_FIELDS)
        position = self.store.read_change_token(token, corpus)
        if position is None:  # not ours, for another corpus, or expired: start over from a new token
            raise ApiError(400, "invalid", "Invalid Value", location="pageToken")
        shared = request.arg("includeItemsFromAllDrives") == "true" and _all_drives(request)
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

    def get_file(self, request: Request, grant: Grant) -> Response:
        file = self.store.get(request.params["id"], all_drives=_all_drives(request))
        if request.arg("alt") == "media":
            if file.size is None:
                raise ApiError(403, "fileNotDownloadable", "Only files with binary content can be downloaded.")
            return Response(200, _read_file(self.store.content_path(file.id)), {"Content-Type": file.mime_type})
        return self._file(request, file)

    def create_metadata(self, request: Request, grant: Grant) -> Response:
        metadata = _json_object(request)
        self._check_quota(grant, metadata.get("parents"), request)
        file = self.store.create(metadata, None, None, all_drives=_all_drives(request))
        return self._file(request, file)

    def patch_metadata(self, request: Request, grant: Grant) -> Response:
        file = self.store.get(request.params["id"], all_drives=_all_drives(request))
        self.store.update(file, _json_object(request), None, _csv(request.arg("addParents")),
                          _csv(request.arg("removeParents")), all_drives=_all_drives(request))
        return self._file(request, file)

    # -- uploads -----------------------------------------------------------------------------

    def upload(self, request: Request, grant: Grant) -> Response:
        file_id = request.params.get("id")
        all_drives = _all_drives(request)
        existing = self.store.get(file_id, all_drives=all_drives) if file_id else None
        kind = request.arg("uploadType")
        if kind == "resumable":
            if existing is None:
                self._check_quota(grant, _peek_parents(request), request)
            uri = self.uploads.open(request, file_id, all_drives, request.base_url)
            return Response(200, b"", {"Location": uri, "X-GUploader-UploadID": uri.rsplit("=", 1)[1]})
        if kind == "multipart":
            metadata, content, media_type = self.uploads.multipart(request)
        elif kind == "media":
            metadata, content, media_type = self.uploads.simple(request)
        else:
            raise ApiError(400, "invalid", f"Invalid Value: uploadType={kind}", location="uploadType",
                               location_type="parameter")
        if existing is not None:
            if "mimeType" not in metadata:
                metadata["mimeType"] = media_type
            file = self.store.update(existing, metadata, content, _csv(request.arg("addParents")),
                                     _csv(request.arg("removeParents")), all_drives=all_drives)
            return self._file(request, file)
        self._check_quota(grant, metadata.get("parents"), request)
        return self._file(request, self.store.create(metadata, content, media_type, all_drives=all_drives))

    def session_put(self, request: Request, grant: Grant) -> Response:
        session = self.uploads.session(request.arg("upload_id"))
        outcome = self.uploads.put(request, session, self._finish_session)
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
            return self.store.update(file, metadata, content, _csv(session.params.get("addParents")),
                                     _csv(session.params.get("removeParents")), all_drives=session.all_drives)
        return self.store.create(session.metadata, content, session.media_type, all_drives=session.all_drives)

    # -- helpers -----------------------------------------------------------------------------

    def _file(self, request: Request, file: DriveFile) -> Response:
        selection = partial.parse_fields(request.arg("fields") or DEFAULT_FILE_FIELDS)
        return Response.json(partial.apply(file.resource(), selection))

    def _check_quota(self, grant: Grant, parents: Any, request: Request) -> None:
        """Service accounts own no storage: writing outside a shared drive fails as on Google."""
        if grant.kind != "service_account":
            return
        parent = (parents or ["root"])[0]
        if self.store.container_drive(parent, all_drives=_all_drives(request)) is None:
            raise ApiError(403, "storageQuotaExceeded", "Service Accounts do not have storage quota. Leverage "
                               "shared drives, or use OAuth delegation instead.", domain="usageLimits")

    def folder_names(self) -> list[tuple[str, str]]:
        """``(parent, name)`` of every folder: tests assert there are no duplicates."""
        with self.store.lock:
            return [(f.parents[0], f.name) for f in self.store.files.values()
                    if f.mime_type == FOLDER_MIME and not f.trashed]

    def find_path(self, path: str, start: str = MY_DRIVE_ROOT) -> DriveFile | None:
        parent, file = start, None
        for name in path.split("/"):
            with self.store.lock:
                file = next((f for f in self.store.files.values()
                             if f.name == name and parent in f.parents and not f.trashed), None)
            if file is None:
                return None
            parent = file.id
        return file


def _drive_error(problem: ApiError) -> Response:
    item: dict[str, Any] = {"domain": problem.domain, "reason": problem.reason, "message": problem.message}
    if problem.location:
        item.update(location=problem.location, locationType=problem.location_type or "parameter")
    return Response.json({"error": {"code": problem.status, "message": problem.message, "errors": [item]}},
                         problem.status)


def _all_drives(request: Request) -> bool:
    return (request.arg("supportsAllDrives") or request.arg("supportsTeamDrives")) == "true"


def _csv(value: str | None) -> list[str]:
    return [v for v in (value or "").split(",") if v]


def _int_arg(request: Request, name: str, default: int, low: int, high: int | None) -> int:
    raw = request.arg(name)
    try:
        value = int(raw) if raw is not None else default
    except ValueError:
        raise ApiError(400, "invalid", f"Invalid value for {name}: {raw}", location=name) from None
    if value < low or (high is not None and value > high):
        raise ApiError(400, "invalid", f"Invalid value for {name}: {raw}", location=name)
    return value


def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(whole_body(request) or b"null")
    except ValueError:
        raise ApiError(400, "parseError", "Parse Error") from None
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ApiError(400, "parseError", "The request body must be a JSON object")
    return body


def _peek_parents(request: Request) -> Any:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return None
    return body.get("parents") if isinstance(body, dict) else None


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


def _listed(value: Any) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return list(value or [])
