"""The Drive sandbox: Drive API v3 files endpoints, uploads and OAuth on one loopback port.

This module routes and guards (OAuth, Drive's error shape); each resource's endpoints are a view
in ``views/`` (files, changes, uploads).

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

import json
from collections.abc import Callable
from typing import Any

from invoicesync.sandbox import RedirectRegistry, Request, Response, SandboxApp

from . import fields as partial
from .oauth import CLIENT_ID, CLIENT_SECRET, LOOPBACK_REDIRECTS, Grant, OAuthServer
from .query import QueryError
from .store import FOLDER_MIME, MY_DRIVE_ROOT, ApiError, DriveFile, DriveStore
from .uploads import SMALL_UPLOAD_LIMIT, Uploads
from .views import ChangesView, FilesView, UploadsView
from .views.base import DEFAULT_FILE_FIELDS, all_drives, drive_error

SHARED_DRIVE_ID = "0ASandboxSharedDrive"
_RATE_REASONS = {"userRateLimitExceeded", "rateLimitExceeded"}
_DEFAULT_REASONS = {400: "badRequest", 401: "authError", 403: "forbidden", 404: "notFound",
                    429: "rateLimitExceeded", 500: "backendError", 502: "backendError", 503: "backendError",
                    504: "backendError"}

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
        files, changes, uploads = FilesView(self), ChangesView(self), UploadsView(self)
        self.route("GET", r"/drive/v3/files", self._authed(files.list_files))
        self.route("POST", r"/drive/v3/files", self._authed(files.create_metadata))
        self.route("GET", r"/drive/v3/changes/startPageToken", self._authed(changes.start_page_token))
        self.route("GET", r"/drive/v3/changes", self._authed(changes.list_changes))
        self.route("GET", r"/drive/v3/files/(?P<id>[^/]+)", self._authed(files.get_file))
        self.route("PATCH", r"/drive/v3/files/(?P<id>[^/]+)", self._authed(files.patch_metadata))
        self.route("POST", r"/upload/drive/v3/files", self._authed(uploads.upload))
        self.route("PATCH", r"/upload/drive/v3/files/(?P<id>[^/]+)", self._authed(uploads.upload))
        # A session URI is its own credential (as on Google): no token needed for the PUTs.
        self.route("PUT", r"/upload/drive/v3/files(?:/(?P<id>[^/]+))?", self._authed(uploads.session_put, public=True))

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
        return drive_error(ApiError(status, reason, message, domain=domain))

    def _authed(self, handler: Handler, *, public: bool = False) -> Callable[[Request], Response]:
        def guarded(request: Request) -> Response:
            grant = Grant("", "", 0, kind="session") if public else self.oauth.check(request)
            if grant is None:
                for _ in request.iter_body():
                    pass
                return drive_error(ApiError(401, "authError", "Invalid Credentials", location="Authorization",
                                                 location_type="header"))
            try:
                return handler(request, grant)
            except ApiError as problem:
                return drive_error(problem)
            except QueryError as exc:
                return drive_error(ApiError(400, "invalid", f"Invalid Value: {exc}", location="q",
                                                 location_type="parameter"))
            except partial.FieldsError as exc:
                return drive_error(ApiError(400, "invalidParameter", str(exc), location="fields",
                                                 location_type="parameter"))
        return guarded

    # -- helpers -----------------------------------------------------------------------------

    def _file(self, request: Request, file: DriveFile) -> Response:
        """A file resource as ``fields`` asks: every view answers with a file through here."""
        selection = partial.parse_fields(request.arg("fields") or DEFAULT_FILE_FIELDS)
        return Response.json(partial.apply(file.resource(), selection))

    def _check_quota(self, grant: Grant, parents: Any, request: Request) -> None:
        """Service accounts own no storage: writing outside a shared drive fails as on Google."""
        if grant.kind != "service_account":
            return
        parent = (parents or ["root"])[0]
        if self.store.container_drive(parent, all_drives=all_drives(request)) is None:
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


def _listed(value: Any) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return list(value or [])
