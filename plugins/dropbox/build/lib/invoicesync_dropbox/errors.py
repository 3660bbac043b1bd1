"""Reading Dropbox error answers: the ``.tag`` unions of 409 route errors, 401 auth errors and
429 rate limits, turned into clear messages and into retry/refresh verdicts for the core client.

Route errors are Stone unions: ``{".tag": "path", "path": {".tag": "not_found"}}``, or, when a
member's value is a struct, its fields merged beside the tag (``{".tag": "path", "reason": {...},
"upload_session_id": ...}``). We branch on the tags, never on ``error_summary`` (which is for logs).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from invoicesync import RemoteError
from invoicesync.http import Verdict

SERVICE = "dropbox"

_MESSAGES = {
    "not_found": "there is nothing at this path",
    "malformed_path": "Dropbox refused the path as malformed",
    "disallowed_name": "Dropbox does not allow this file or folder name",
    "insufficient_space": "the Dropbox account is out of space",
    "no_write_permission": "this Dropbox login may not write here",
    "team_folder": "this path is a team folder, which cannot be written this way",
    "operation_suppressed": "Dropbox suppressed the write (policy of the account or folder)",
    "too_many_write_operations": "too many writes at once in this Dropbox (namespace lock contention); "
    "it will be tried again",
    "access_restricted": "access to this path is restricted",
    "content_hash_mismatch": "the bytes Dropbox received do not match their content_hash (damaged in transit)",
    "payload_too_large": "a single request may carry at most 150 MiB; use an upload session",
    "incorrect_offset": "the upload session is at a different offset",
    "closed": "the upload session is already closed",
    "not_closed": "the upload session was not closed before a batch commit",
    "too_large": "the file is larger than Dropbox allows",
    "encryption_not_supported": "the folder is encrypted, which this API cannot write",
    "restricted_content": "Dropbox restricts this content",
    "locked": "the file is locked",
    "expired_access_token": "the access token expired",
    "invalid_access_token": "the login is no longer valid; run `invoicesync connect` for this account again",
    "missing_scope": "the app lacks a permission (scope) this needs; reconnect with the listed scopes",
    "user_suspended": "the Dropbox user is suspended",
    "route_access_denied": "the app may not call this API route",
    "too_many_requests": "too many requests to Dropbox; backing off",
}

_CONFLICTS = {
    "file": "a different file already exists at this path",
    "folder": "a folder already exists at this path",
    "file_ancestor": "a file is in the way of one of the parent folders",
}


def tag_chain(error: Any) -> list[str]:
    """The tags from the outermost union inwards: ``["path", "conflict", "file"]``.

    Dropbox writes a void member as ``{".tag": "not_found"}``; the JSON-encoding rules also allow
    the bare string ``"not_found"`` for one, so both are read."""
    if isinstance(error, str):
        return [error] if error else []
    tags: list[str] = []
    node = error
    while isinstance(node, dict):
        tag = node.get(".tag")
        if isinstance(tag, str):
            tags.append(tag)
            inner = node.get(tag)
            if isinstance(inner, dict):
                node = inner
                continue
            if isinstance(inner, str) and inner:
                tags.append(inner)  # the shorthand form of a void member
                break
        # A struct-valued member (or RateLimitError, which has no tag): follow the nested union.
        node = next((v for k, v in node.items() if k != ".tag" and isinstance(v, dict) and ".tag" in v), None)
    return tags


def summary_tags(summary: Any) -> list[str]:
    """The tags spelled in ``error_summary`` (``"path/not_found/.."``): only a fallback, for an
    answer whose ``error`` union is missing or unreadable."""
    if not isinstance(summary, str):
        return []
    return [part for part in summary.split("/") if part and not part.startswith(".")]


def error_tags(body: dict[str, Any] | None) -> list[str]:
    """The tag chain of an error body: from ``error``, else from ``error_summary``."""
    if not body:
        return []
    return tag_chain(body.get("error")) or summary_tags(body.get("error_summary"))


class DropboxApiError(RemoteError):
    """An error answer from Dropbox, with its union kept for the caller to branch on."""

    def __init__(self, message: str, *, status: int, error: Any = None, summary: str | None = None) -> None:
        self.error = error
        self.tags = (tag_chain(error) if error is not None else []) or summary_tags(summary)
        self.summary = summary
        code = "/".join(self.tags) or (summary.rstrip("./") if summary else None)
        super().__init__(message, status=status, code=code, service=SERVICE)

    def has(self, tag: str) -> bool:
        return tag in self.tags

    @property
    def correct_offset(self) -> int | None:
        """``incorrect_offset``'s payload, wherever it sits in the union."""
        node = self.error
        while isinstance(node, dict):
            if node.get(".tag") == "incorrect_offset" and isinstance(node.get("correct_offset"), int):
                return int(node["correct_offset"])
            node = next((v for v in node.values() if isinstance(v, dict)), None)
        return None


def describe(tags: list[str], error: Any = None) -> str:
    """A sentence for a chain of tags, most specific first."""
    if "conflict" in tags:
        index = tags.index("conflict")
        kind = tags[index + 1] if index + 1 < len(tags) else "file"
        return _CONFLICTS.get(kind, "a conflicting item exists at this path")
    if "missing_scope" in tags and isinstance(error, dict) and error.get("required_scope"):
        return f"{_MESSAGES['missing_scope']} (needs {error['required_scope']})"
    for tag in reversed(tags):
        if tag in _MESSAGES:
            return _MESSAGES[tag]
    return "Dropbox refused the request (" + "/".join(tags) + ")" if tags else "Dropbox refused the request"


def _json(response: httpx.Response) -> dict[str, Any] | None:
    """The JSON object of an error answer, or ``None`` for a plain-text one. Dropbox labels JSON
    ``application/json``; a body that is plainly a JSON object is read even if it is mislabelled."""
    try:
        raw = response.content
    except httpx.ResponseNotRead:
        return None
    if "json" not in response.headers.get("Content-Type", "") and not raw.lstrip().startswith(b"{"):
        return None
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def parse_error(response: httpx.Response) -> DropboxApiError:
    """The core ``error_parser``: any non-2xx Dropbox answer as a ``DropboxApiError``."""
    status = response.status_code
    body = _json(response)
    if body is None:
        # 400 (bad input) and some 429/5xx answers are plain text.
        try:
            text = response.text.strip()
        except httpx.ResponseNotRead:
            text = ""
        return DropboxApiError(text[:300] or response.reason_phrase or "error", status=status)
    error = body.get("error")
    summary = body.get("error_summary")
    tags = error_tags(body)
    message = describe(tags, error)
    user_message = body.get("user_message")
    if isinstance(user_message, dict) and user_message.get("text"):
        message += f" — Dropbox says: {user_message['text']}"
    return DropboxApiError(message, status=status, error=error, summary=summary)


def classify(response: httpx.Response) -> Verdict | None:
    """Dropbox signals a status code alone does not carry, for the core retry loop."""
    status = response.status_code
    if status == 429:
        _retry_after_from_body(response)
        return Verdict.RETRY
    if status in (401, 409):
        tags = error_tags(_json(response))
        if status == 401:
            if "expired_access_token" in tags:
                return Verdict.REFRESH
            # A missing scope or a suspended user cannot be fixed by a new access token.
            if tags and "invalid_access_token" not in tags:
                return Verdict.OK
            return None
        if "too_many_write_operations" in tags:
            # Lock contention reported inside a route error: as transient as a 429.
            return Verdict.RETRY
    return None


def _retry_after_from_body(response: httpx.Response) -> None:
    """Dropbox may put the wait in the JSON body (``retry_after``) only. The core honours the
    ``Retry-After`` header, so copy the body's value there when the header is missing."""
    if response.headers.get("Retry-After"):
        return
    body = _json(response) or {}
    error = body.get("error")
    # RateLimitError puts it in ``error``; accept it beside ``error`` as well.
    wait = error.get("retry_after") if isinstance(error, dict) else None
    if wait is None:
        wait = body.get("retry_after")
    if isinstance(wait, int | float) and not isinstance(wait, bool) and wait >= 0:
        response.headers["Retry-After"] = str(wait)


def encode_arg(arg: Any) -> str:
    """JSON for the ``Dropbox-API-Arg`` header: HTTP-header-safe, every non-ASCII char escaped."""
    return json.dumps(arg, ensure_ascii=True, separators=(",", ":")).replace("\x7f", "\\u007f")
