"""Drive API v3 over the shared HTTP client: list, get, folders, multipart and resumable uploads.

Every call asks for explicit ``fields`` (Drive's defaults omit md5Checksum, parents and
appProperties) and sends ``supportsAllDrives=true`` so shared-drive ids resolve. Bodies are
streamed from a ``RangeReader`` so a file is never held whole in memory.
"""

from __future__ import annotations

import functools
import json
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from invoicesync import Context, RemoteError
from invoicesync.http import Authenticator, iter_pages, relogin_command

from .errors import SERVICE, DriveError, classify, is_not_found, parse_error
from .settings import GDriveSettings

FOLDER_MIME = "application/vnd.google-apps.folder"
#: The ``appProperties`` every file we write carries: its invoicesync document, role and content hash.
APP_DOCUMENT = "invoicesync_document"
APP_ROLE = "invoicesync_role"
APP_SHA256 = "invoicesync_sha256"
#: What we read back of every file: enough to check content, place and ownership.
FILE_FIELDS = "id,name,mimeType,parents,md5Checksum,size,appProperties,trashed,driveId,createdTime,modifiedTime"

#: Changes per ``changes.list`` page: the most Drive gives.
CHANGES_PAGE = 1000

#: ``reader(start, end)`` streams bytes ``[start, end)`` of one file.
RangeReader = Callable[[int, int], Iterator[bytes]]


def quote(value: str) -> str:
    """A ``q`` string literal: single quotes, with ``\\`` and ``'`` escaped by a backslash."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def app_property(key: str, value: str) -> str:
    return f"appProperties has {{ key={quote(key)} and value={quote(value)} }}"


@dataclass
class UploadProgress:
    """Where a resumable session stands: bytes the server holds, and the file once complete."""

    received: int
    file: dict[str, Any] | None = None


class SessionGoneError(RemoteError):
    """The resumable session URI is unknown or expired (404/410): start a new session.

    A ``RemoteError``, so a session lost mid-upload fails only its document; the next attempt's
    status query sees it gone and opens a new session."""


class DriveClient:
    def __init__(self, ctx: Context, settings: GDriveSettings, auth: Authenticator | None) -> None:
        self.settings = settings
        #: The shared drive lookups are confined to (``corpora=drive``): the configured one, or the
        #: one the root folder turned out to live in (``FolderTree.root`` sets it).
        self.drive_id = settings.shared_drive_id
        errors = functools.partial(parse_error, relogin=relogin_command(ctx.account))
        common = {"service": SERVICE, "auth": auth, "classify": classify, "error_parser": errors}
        self.api = ctx.http(settings.api_url, **common)  # type: ignore[arg-type]
        self.upload = ctx.http(settings.upload_url, timeout=300.0, **common)  # type: ignore[arg-type]

    # -- reading -----------------------------------------------------------------------------

    def list_files(self, q: str, fields: str = FILE_FIELDS) -> Iterator[dict[str, Any]]:
        params: dict[str, Any] = {
            "q": q, "fields": f"nextPageToken,files({fields})", "pageSize": self.settings.page_size,
            "supportsAllDrives": "true", "includeItemsFromAllDrives": "true",
        }
        if self.drive_id:
            params.update(corpora="drive", driveId=self.drive_id)

        def next_page(body: Any) -> tuple[str, dict[str, Any] | None] | None:
            token = body.get("nextPageToken") if isinstance(body, dict) else None
            return ("files", {**params, "pageToken": token}) if token else None

        for page in iter_pages(self.api, "files", params=params, next_page=next_page):
            yield from page.get("files") or []

    def get_file(self, file_id: str, fields: str = FILE_FIELDS) -> dict[str, Any] | None:
        """The file, or ``None`` if Drive says it does not exist (404)."""
        try:
            return self.api.get(f"files/{file_id}", params={"fields": fields, "supportsAllDrives": "true"}).json()
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise

    # -- the changes feed --------------------------------------------------------------------

    def _corpus_params(self) -> dict[str, Any]:
        """The changes feed of the corpus ``list_files`` searches: the shared drive of ``drive_id``
        (``corpora=drive``), else the user's (My Drive, and shared-drive items as ``files.list``
        includes them)."""
        params: dict[str, Any] = {"supportsAllDrives": "true"}
        if self.drive_id:
            params["driveId"] = self.drive_id
        return params

    def start_page_token(self) -> str:
        """Where the changes feed stands now: changes from here on are listed from this token."""
        body = self.api.get("changes/startPageToken",
                            params={**self._corpus_params(), "fields": "startPageToken"}).json()
        token = body.get("startPageToken") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise DriveError("changes.getStartPageToken answered without a token", status=200,
                             reason="noStartPageToken")
        return token

    def changes(self, token: str, fields: str) -> Iterator[tuple[list[dict[str, Any]], str | None]]:
        """The changes since ``token``, a page at a time, each page with the token to keep once it
        is applied: ``newStartPageToken`` on the last page, ``None`` before it."""
        params = {**self._corpus_params(), "includeItemsFromAllDrives": "true", "includeRemoved": "true",
                  "spaces": "drive", "pageSize": CHANGES_PAGE,
                  "fields": f"nextPageToken,newStartPageToken,changes({fields})"}
        seen: set[str] = set()
        while True:
            if token in seen:
                raise DriveError("changes.list pages loop back", status=200, reason="pageLoop")
            seen.add(token)
            body = self.api.get("changes", params={**params, "pageToken": token}).json()
            body = body if isinstance(body, dict) else {}
            changes = [c for c in body.get("changes") or [] if isinstance(c, dict)]
            last, following = body.get("newStartPageToken"), body.get("nextPageToken")
            if isinstance(last, str) and last:
                yield changes, last
                return
            if not isinstance(following, str) or not following:
                raise DriveError("changes.list answered with neither nextPageToken nor newStartPageToken",
                                 status=200, reason="noPageToken")
            yield changes, None
            token = following

    # -- metadata writes ---------------------------------------------------------------------

    def create_folder(self, name: str, parent: str) -> dict[str, Any]:
        body = {"name": name, "mimeType": FOLDER_MIME, "parents": [parent]}
        params = {"fields": FILE_FIELDS, "supportsAllDrives": "true"}
        return self.api.post("files", json=body, params=params).json()

    def update_metadata(self, file_id: str, metadata: dict[str, Any],
                        params: dict[str, str] | None = None) -> dict[str, Any]:
        """PATCH a file's metadata (``trashed``, a move with ``addParents``/``removeParents``).
        Setting the same values twice changes nothing: safe to resend."""
        query = {"fields": FILE_FIELDS, "supportsAllDrives": "true", **(params or {})}
        return self.api.request("PATCH", f"files/{file_id}", json=metadata, params=query, idempotent=True).json()

    # -- content writes ----------------------------------------------------------------------

    def multipart(self, metadata: dict[str, Any], media_type: str, size: int, reader: RangeReader, *,
                  file_id: str | None = None, params: dict[str, str] | None = None) -> dict[str, Any]:
        """Create (POST) or replace (PATCH ``file_id``) a file: metadata and content in one request."""
        boundary = "isync" + secrets.token_hex(16)
        head = (f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
                f"{json.dumps(metadata)}\r\n--{boundary}\r\nContent-Type: {media_type}\r\n\r\n").encode()
        tail = f"\r\n--{boundary}--\r\n".encode()

        def body() -> Iterator[bytes]:
            yield head
            yield from reader(0, size)
            yield tail

        headers = {"Content-Type": f"multipart/related; boundary={boundary}",
                   "Content-Length": str(len(head) + size + len(tail))}
        query = {"uploadType": "multipart", "fields": FILE_FIELDS, "supportsAllDrives": "true", **(params or {})}
        if file_id is None:
            # A lost answer may still have created the file: core raises OutcomeUnknown, we look it up.
            return self.upload.post("files", content=body, headers=headers, params=query).json()
        # Replacing a file's content with the same bytes twice is harmless: safe to resend.
        return self.upload.request("PATCH", f"files/{file_id}", content=body, headers=headers, params=query,
                                   idempotent=True).json()

    def start_resumable(self, metadata: dict[str, Any], media_type: str, size: int, *,
                        file_id: str | None = None, params: dict[str, str] | None = None) -> str:
        """Open a resumable session and return its URI (the ``Location`` header)."""
        headers = {"X-Upload-Content-Type": media_type, "X-Upload-Content-Length": str(size),
                   "Content-Type": "application/json; charset=UTF-8"}
        query = {"uploadType": "resumable", "fields": FILE_FIELDS, "supportsAllDrives": "true", **(params or {})}
        # Opening a session creates no file, so resending after a lost answer is safe.
        response = self.upload.request("PATCH" if file_id else "POST", f"files/{file_id}" if file_id else "files",
                                       content=json.dumps(metadata).encode(), headers=headers, params=query,
                                       idempotent=True)
        location = response.headers.get("Location")
        if not location:
            raise _no_location(response)
        # Google sends an absolute URI; a relative one is resolved against the request we sent,
        # not joined to the upload base (which would double ``/upload/drive/v3``).
        return str(response.url.join(location))

    def put_chunk(self, session: str, start: int, end: int, total: int, reader: RangeReader) -> UploadProgress:
        """Send bytes ``[start, end)`` of ``total``; the server says how much it now holds.

        Not resent blind after a lost answer (``OutcomeUnknown``): the documented recovery of an
        interrupted upload is a status query, then the bytes from where the server's Range ends."""
        headers = {"Content-Length": str(end - start), "Content-Range": f"bytes {start}-{end - 1}/{total}"}
        response = self.upload.request("PUT", session, content=lambda: reader(start, end), headers=headers,
                                       idempotent=False, check=False)
        return self._progress(response)

    def upload_status(self, session: str, total: int) -> UploadProgress:
        """Ask an interrupted session how far it got (``Content-Range: bytes */total``)."""
        headers = {"Content-Length": "0", "Content-Range": f"bytes */{total}"}
        return self._progress(self.upload.request("PUT", session, content=b"", headers=headers, check=False))

    def _progress(self, response: httpx.Response) -> UploadProgress:
        if response.status_code == 308:
            return UploadProgress(received=_range_end(response.headers.get("Range")))
        if response.status_code in (404, 410):
            raise SessionGoneError("the upload session is gone (expired or unknown)", status=response.status_code,
                                   service=SERVICE)
        self.upload.raise_for_status(response)
        body = response.json()
        return UploadProgress(received=int(body.get("size") or 0), file=body)


def _range_end(header: str | None) -> int:
    """``Range: bytes=0-N`` → N+1 bytes received; no header means nothing arrived yet.

    Read leniently (any case, spaces, the ``bytes=`` unit left out); anything not starting at 0
    is refused rather than guessed at."""
    if not header or not header.strip():
        return 0
    match = re.fullmatch(r"\s*(?:bytes\s*=\s*)?0\s*-\s*(\d+)\s*", header, re.IGNORECASE)
    if not match:
        raise DriveError(f"unexpected Range header in a 308 answer: {header!r}", status=308, reason="badRange")
    return int(match.group(1)) + 1


def _no_location(response: httpx.Response) -> Exception:
    return DriveError("Drive opened no upload session (no Location header)", status=response.status_code,
                      reason="noLocation")
