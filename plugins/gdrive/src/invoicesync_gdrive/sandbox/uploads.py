"""Upload endpoints: ``uploadType=media|multipart|resumable`` and resumable sessions (308 + Range)."""

from __future__ import annotations

import json
import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from invoicesync.sandbox import DropConnection, Request

from .multipart import MultipartError, parse_related
from .store import ApiError, Content, DriveFile, DriveStore

#: Non-final chunks must be whole multiples of this.
CHUNK_UNIT = 256 * 1024
#: Simple and multipart uploads are for files of "5 MB or less" (Google does not say MB or MiB):
#: the sandbox holds them to the smaller reading, so a client that passes never trips the real one.
SMALL_UPLOAD_LIMIT = 5_000_000
#: ``mediaUpload.maxSize`` of the Drive discovery document: 5 TiB.
MAX_UPLOAD = 5_497_558_138_880
_CONTENT_RANGE = re.compile(r"bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)")


def whole_body(request: Request) -> bytes:
    """The body of a request that creates or changes something, once all of it has arrived."""
    body = request.body
    _check_complete(request, len(body))
    return body


def whole_chunks(request: Request) -> Iterator[bytes]:
    """``request.iter_body()``, ending in ``DropConnection`` if the body stops short."""
    received = 0
    for chunk in request.iter_body():
        received += len(chunk)
        yield chunk
    _check_complete(request, received)


def _check_complete(request: Request, received: int) -> None:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and received < int(declared):
        # The client went away mid-body (killed, connection cut). Drive acts on a request only
        # once all of it is in: an empty or cut metadata part must not become an "Untitled" file.
        raise DropConnection


@dataclass
class Session:
    id: str
    metadata: dict[str, Any]
    media_type: str
    file_id: str | None  #: set when the session replaces an existing file's content
    total: int | None
    all_drives: bool
    params: dict[str, str]
    content: Content
    received: int = 0
    done: DriveFile | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class ChunkOutcome:
    """Either the finished file, or how many bytes the session holds (answered as 308)."""

    file: DriveFile | None
    received: int
    created: bool = False


class Uploads:
    def __init__(self, store: DriveStore, *, small_upload_limit: int | None = SMALL_UPLOAD_LIMIT) -> None:
        self.store = store
        #: ``None``: simple and multipart uploads of any size (lenient, by option only).
        self.small_upload_limit = small_upload_limit
        self.sessions: dict[str, Session] = {}
        self.bytes_received = 0  #: every content byte that arrived, re-sends included (tests assert on it)
        self.lock = threading.Lock()

    def simple(self, request: Request) -> tuple[dict[str, Any], Content, str]:
        """``uploadType=media``: the body is the content, no metadata."""
        content = self.store.spool()
        try:
            for chunk in whole_chunks(request):
                self._count(len(chunk))
                content.write(chunk)
        except DropConnection:
            content.path.unlink(missing_ok=True)
            raise
        self._check_small(content, "media")
        return {}, content, request.headers.get("content-type", "application/octet-stream")

    def multipart(self, request: Request) -> tuple[dict[str, Any], Content, str]:
        content = self.store.spool()

        def write(data: bytes) -> None:
            self._count(len(data))
            content.write(data)

        chunks = whole_chunks(request)
        try:
            metadata, media_type = parse_related(chunks, request.headers.get("content-type", ""), write)
            for _epilogue in chunks:  # to the end: a body cut after the closing boundary is still cut
                pass
        except MultipartError as exc:
            content.path.unlink(missing_ok=True)
            raise ApiError(400, "badContent", f"Bad multipart upload: {exc}") from None
        except DropConnection:
            content.path.unlink(missing_ok=True)
            raise
        self._check_small(content, "multipart")
        return metadata, content, media_type

    def _check_small(self, content: Content, kind: str) -> None:
        if self.small_upload_limit is not None and content.size > self.small_upload_limit:
            content.path.unlink(missing_ok=True)
            raise ApiError(413, "uploadTooLarge", f"uploadType={kind} takes at most {self.small_upload_limit} "
                           "bytes of content; use uploadType=resumable for larger files.")

    def open(self, request: Request, file_id: str | None, all_drives: bool, base_url: str) -> str:
        """Start a session; return its URI. The body is the JSON metadata (may be empty)."""
        raw = whole_body(request)
        try:
            metadata = json.loads(raw) if raw.strip() else {}
        except ValueError:
            raise ApiError(400, "parseError", "Parse Error") from None
        declared = request.headers.get("x-upload-content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_UPLOAD):
            raise ApiError(413 if declared.isdigit() else 400, "uploadTooLarge" if declared.isdigit() else "invalid",
                           f"X-Upload-Content-Length {declared} is not a size Drive takes (at most {MAX_UPLOAD}).")
        session = Session(
            id=secrets.token_urlsafe(24), metadata=metadata if isinstance(metadata, dict) else {},
            media_type=request.headers.get("x-upload-content-type") or str(metadata.get("mimeType") or
                                                                           "application/octet-stream"),
            file_id=file_id, total=int(declared) if declared else None, all_drives=all_drives,
            params={k: v[0] for k, v in request.query.items() if k in {"addParents", "removeParents", "fields"}},
            content=self.store.spool(),
        )
        with self.lock:
            self.sessions[session.id] = session
        path = f"/upload/drive/v3/files/{file_id}" if file_id else "/upload/drive/v3/files"
        return f"{base_url}{path}?uploadType=resumable&upload_id={session.id}"

    def session(self, upload_id: str | None) -> Session:
        with self.lock:
            session = self.sessions.get(upload_id or "")
        if session is None:
            raise ApiError(404, "notFound", "Upload session not found or expired.")
        return session

    def put(self, request: Request, session: Session, finish: Any) -> ChunkOutcome:
        """One PUT on a session URI: a status query (empty body, ``bytes */total``) or a chunk.

        ``finish(session)`` creates or updates the file once every byte is in.
        """
        header = request.headers.get("content-range", "")
        match = _CONTENT_RANGE.fullmatch(header.strip())
        if not match:
            raise ApiError(400, "badRequest", f"Invalid Content-Range header: {header!r}")
        first, last, total_text = match.groups()
        with session.lock:
            if total_text != "*":
                total = int(total_text)
                if session.total is not None and total != session.total:
                    raise ApiError(400, "badRequest", f"Total size {total} does not match the declared "
                                                          f"{session.total}.")
                session.total = total
            if session.done is not None:
                return ChunkOutcome(session.done, session.received)
            if first is None:  # status query
                for _ in request.iter_body():
                    pass
                if session.total is not None and session.received == session.total:
                    return self._finish(session, finish)
                return ChunkOutcome(None, session.received)
            return self._chunk(request, session, int(first), int(last), finish)

    def _chunk(self, request: Request, session: Session, first: int, last: int, finish: Any) -> ChunkOutcome:
        length = last - first + 1
        is_final = session.total is not None and last + 1 == session.total
        if first > session.received:
            raise ApiError(400, "badRequest", f"The upload offset is {first} but only {session.received} "
                                                  "bytes have been received.")
        if session.total is not None and last >= session.total:
            raise ApiError(400, "badRequest", "The chunk goes past the declared total size.")
        if not is_final and length % CHUNK_UNIT:
            raise ApiError(400, "badRequest", f"Invalid chunk size {length}: chunks other than the last must "
                                                  "be a multiple of 256 KiB (262144 bytes).")
        skip = session.received - first  # bytes of this chunk we already hold (a re-send)
        seen = 0
        for data in request.iter_body():
            self._count(len(data))
            start = max(0, skip - seen)
            seen += len(data)
            if start < len(data):
                session.content.write(data[start:])
        if seen != length:
            session.received = session.content.size  # keep what arrived; the client resumes from Range
            raise ApiError(400, "badRequest", f"Content-Range says {length} bytes but {seen} arrived.")
        session.received = session.content.size
        if session.total is not None and session.received == session.total:
            return self._finish(session, finish)
        return ChunkOutcome(None, session.received)

    def _finish(self, session: Session, finish: Any) -> ChunkOutcome:
        session.done = finish(session)
        return ChunkOutcome(session.done, session.received, created=session.file_id is None)

    def _count(self, size: int) -> None:
        with self.lock:
            self.bytes_received += size
