"""Upload sessions of the sandbox: bytes appended to a file on disk, with Dropbox's rules.

- ``offset`` must equal the bytes received so far, else ``incorrect_offset`` + ``correct_offset``;
- a closed session takes no more data (``closed``); a batch commit needs it closed (``not_closed``);
- each request carries at most 150 MiB (``payload_too_large``), a file at most 2^41 - 2^22 bytes
  (``too_large``);
- ``content_hash`` covers the bytes of that one request (``content_hash_mismatch``), and data
  whose hash does not match is discarded, so the session stays at its old offset.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..content_hash import ContentHasher
from .store import RouteError

MAX_REQUEST = 150 * 1024 * 1024
#: The largest file an upload session may build (UploadSessionLookupError ``too_large``).
MAX_FILE = 2**41 - 2**22
SESSION_TTL = 7 * 24 * 3600


@dataclass
class Session:
    id: str
    file: Path
    offset: int = 0
    closed: bool = False
    created: float = field(default_factory=time.time)
    lock: threading.Lock = field(default_factory=threading.Lock)


class SessionError(Exception):
    """A lookup failure (``UploadSessionLookupError``); routes wrap it as their union needs."""

    def __init__(self, error: dict[str, object]) -> None:
        super().__init__(str(error))
        self.error = error


class Sessions:
    def __init__(self, root: Path, *, max_file: int = MAX_FILE) -> None:
        self.root = root
        self.max_file = max_file
        root.mkdir(parents=True, exist_ok=True)
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def start(self) -> Session:
        session_id = "pid_upload_session:" + secrets.token_urlsafe(30)
        path = self.root / secrets.token_hex(12)
        path.touch()
        session = Session(session_id, path)
        with self._lock:
            self._sessions[session_id] = session
        return session

    def get(self, session_id: object) -> Session:
        with self._lock:
            session = self._sessions.get(str(session_id))
        if session is None or time.time() - session.created > SESSION_TTL:
            raise SessionError({".tag": "not_found"})
        return session

    def forget(self, session: Session) -> None:
        with self._lock:
            self._sessions.pop(session.id, None)

    def check_offset(self, session: Session, offset: object) -> None:
        if not isinstance(offset, int) or offset != session.offset:
            raise SessionError({".tag": "incorrect_offset", "correct_offset": session.offset})

    def write(self, session: Session, body: Iterable[bytes], content_hash: str | None) -> int:
        """Append a request body; on any refusal truncate back, so the offset never moves."""
        hasher = ContentHasher()
        received = 0
        too_large = file_too_large = False
        with open(session.file, "r+b") as handle:
            handle.seek(session.offset)
            for chunk in body:
                received += len(chunk)
                too_large = too_large or received > MAX_REQUEST
                file_too_large = file_too_large or session.offset + received > self.max_file
                if too_large or file_too_large:
                    continue  # keep draining the body, store nothing more
                hasher.update(chunk)
                handle.write(chunk)
            if file_too_large and not too_large:
                handle.truncate(session.offset)
                raise SessionError({".tag": "too_large"})
            if too_large or (content_hash is not None and hasher.hexdigest() != content_hash):
                handle.truncate(session.offset)
                raise SessionError({".tag": "payload_too_large" if too_large else "content_hash_mismatch"})
            handle.truncate(session.offset + received)
        session.offset += received
        return received


def lookup_failed(error: SessionError) -> RouteError:
    """How finish routes report a session problem: under ``lookup_failed``."""
    tag = error.error.get(".tag")
    if tag in ("content_hash_mismatch", "payload_too_large"):
        return RouteError(dict(error.error))
    return RouteError({".tag": "lookup_failed", "lookup_failed": dict(error.error)})
