"""Drive's error body turned into clear errors, and the retry signals hidden in 403 answers.

Drive answers errors as ``{"error": {"code", "message", "errors": [{"domain", "reason",
"message", "location"?}]}}``. Over-quota is a 403 with reason ``userRateLimitExceeded`` or
``rateLimitExceeded`` — transient, unlike every other 403 — so the status alone cannot tell.
The reason, not the status, decides: ``backendError`` is transient whatever status carries it.

Read tolerantly: newer Google errors may carry the reason only in ``error.details[]`` (an
``ErrorInfo`` with an upper-case reason such as ``RATE_LIMIT_EXCEEDED``), so reasons are
compared without case or underscores.
"""

from __future__ import annotations

from typing import Any

import httpx
from invoicesync import AuthError, InvoiceSyncError, RateLimited, RemoteError, ServerError
from invoicesync.http import Verdict

SERVICE = "gdrive"
#: Reasons that mean "try again later" (compared through ``_norm``); any other reason is final.
RETRY_REASONS = frozenset({"userratelimitexceeded", "ratelimitexceeded", "backenderror"})

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
    errors = _list(error.get("errors"))
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    reason = first.get("reason")
    if not reason:  # no legacy errors[]: take the reason of an ErrorInfo detail, if any
        details = _list(error.get("details"))
        reason = next((d["reason"] for d in details if isinstance(d, dict) and d.get("reason")), None)
    message = str(error.get("message") or first.get("message") or response.reason_phrase)
    return (str(reason) if reason else None), message, first.get("location")


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _norm(reason: str | None) -> str:
    return (reason or "").replace("_", "").lower()


def is_retryable(reason: str | None) -> bool:
    return _norm(reason) in RETRY_REASONS


def parse_error(response: httpx.Response, *, relogin: str = "invoicesync connect") -> InvoiceSyncError:
    """The ``error_parser`` for every Drive request; ``relogin`` is the command that logs in again."""
    reason, message, location = error_details(response)
    status = response.status_code
    if status == 401:
        # Core already refreshed the token once and resent: the login itself is refused.
        return AuthError(f"gdrive: Google refused the login ({message}); run `{relogin}` to log in again")
    if status == 429 or (is_retryable(reason) and _norm(reason) != "backenderror"):
        return DriveRateLimited(f"still over Drive's rate limit after retries: {message}", status=status,
                                code=reason, service=SERVICE)
    if status >= 500 or _norm(reason) == "backenderror":
        return ServerError(f"Drive is failing: {message}", status=status, code=reason, service=SERVICE)
    explanation = _EXPLAIN.get(reason or "")
    text = f"{explanation} ({message})" if explanation else message
    if location and location not in text:
        text += f" [at {location}]"
    return DriveError(text, status=status, reason=reason, location=location)


def classify(response: httpx.Response) -> Verdict | None:
    """A rate-limit or backend reason is retried with backoff whatever the status (mostly 403).

    429 and 5xx are core's defaults anyway, and 401 refreshes the token; other 4xx answers
    (``insufficientFilePermissions``, ``notFound``, ``storageQuotaExceeded``…) are final."""
    status = response.status_code
    if status < 400 or status == 401 or status == 429 or status >= 500:
        return None
    try:
        response.read()
    except httpx.HTTPError:
        return None
    reason, _, _ = error_details(response)
    return Verdict.RETRY if is_retryable(reason) else None


def is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, RemoteError) and exc.status == 404


def _text(response: httpx.Response) -> str:
    try:
        return response.text[:300].strip()
    except httpx.ResponseNotRead:
        return ""
