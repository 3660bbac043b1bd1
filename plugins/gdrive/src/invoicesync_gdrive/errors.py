"""Drive's error body turned into clear errors, and the retry signals hidden in 403 answers.

Drive answers errors as ``{"error": {"code", "message", "errors": [{"domain", "reason",
"message", "location"?}]}}``. Over-quota is a 403 with reason ``userRateLimitExceeded`` or
``rateLimitExceeded`` — transient, unlike every other 403 — so the status alone cannot tell.
"""

from __future__ import annotations

from typing import Any

import httpx
from invoicesync import RateLimited, RemoteError, ServerError
from invoicesync.http import Verdict

SERVICE = "gdrive"
RATE_LIMIT_REASONS = frozenset({"userRateLimitExceeded", "rateLimitExceeded"})

_EXPLAIN = {
    "storageQuotaExceeded": "the Drive is out of storage (a service account has none: write into a shared drive)",
    "insufficientFilePermissions": "no permission to write there (ask for Editor/Content manager access)",
    "appNotAuthorizedToFile": "this app may not touch that file (with the drive.file scope it sees only its own files)",
    "forbidden": "no permission",
    "notFound": "not found: the folder or file is gone, trashed, or not shared with this login",
    "authError": "the login was refused; run `invoicesync connect` again",
    "teamDriveMembershipRequired": "the login is not a member of the shared drive",
}


class DriveError(RemoteError):
    """A Drive error answer; ``reason`` is Drive's own (``notFound``, ``storageQuotaExceeded``…)."""

    def __init__(self, message: str, *, status: int | None, reason: str | None, location: str | None = None):
        super().__init__(message, status=status, code=reason, service=SERVICE)
        self.reason = reason
        self.location = location


class DriveRateLimited(RateLimited):
    pass


def error_details(response: httpx.Response) -> tuple[str | None, str, str | None]:
    """``(reason, message, location)`` from an error body; tolerant of non-JSON bodies."""
    body: Any
    try:
        body = response.json()
    except (ValueError, httpx.ResponseNotRead):
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        text = _text(response)
        return None, text or response.reason_phrase or "error", None
    errors = error.get("errors") or []
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    message = str(error.get("message") or first.get("message") or response.reason_phrase)
    return first.get("reason"), message, first.get("location")


def parse_error(response: httpx.Response) -> RemoteError:
    """The ``error_parser`` for every Drive request."""
    reason, message, location = error_details(response)
    status = response.status_code
    if status == 429 or reason in RATE_LIMIT_REASONS:
        return DriveRateLimited(f"still over Drive's rate limit after retries: {message}", status=status,
                                code=reason, service=SERVICE)
    if status >= 500:
        return ServerError(f"Drive is failing: {message}", status=status, code=reason, service=SERVICE)
    explanation = _EXPLAIN.get(reason or "")
    text = f"{explanation} ({message})" if explanation else message
    if location and location not in text:
        text += f" [at {location}]"
    return DriveError(text, status=status, reason=reason, location=location)


def classify(response: httpx.Response) -> Verdict | None:
    """403 ``userRateLimitExceeded``/``rateLimitExceeded`` is a throttle: retry with backoff."""
    if response.status_code != 403:
        return None  # core's defaults: 429/5xx retry, 401 refreshes the token
    try:
        response.read()
    except httpx.HTTPError:
        return None
    reason, _, _ = error_details(response)
    return Verdict.RETRY if reason in RATE_LIMIT_REASONS else None


def is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, RemoteError) and exc.status == 404


def _text(response: httpx.Response) -> str:
    try:
        return response.text[:300].strip()
    except httpx.ResponseNotRead:
        return ""
