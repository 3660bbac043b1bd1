"""Fault injection: throttles and server errors are retried; real refusals fail one document clearly."""

from __future__ import annotations

from typing import Any

import pytest
from invoicesync import DeliveryStatus


@pytest.mark.parametrize("fault", [
    {"status": 403, "code": "rateLimitExceeded", "method": "GET", "path": r"^/drive/v3/files$"},
    {"status": 403, "code": "userRateLimitExceeded", "method": "POST", "path": r"^/upload/drive/v3/files$"},
    {"status": 429, "method": "POST", "path": r"^/drive/v3/files$", "headers": {"Retry-After": "0"}},
    {"status": 503, "method": "GET", "path": r"^/drive/v3/files$"},
], ids=["403-rateLimitExceeded", "403-userRateLimitExceeded", "429", "503-read"])
def test_transient_errors_are_retried(drive: Any, fault: dict[str, Any]) -> None:
    injected = drive.app.add_fault(fault)
    [delivery] = drive.push([drive.document(1)])
    assert injected.seen >= 2  # it fired, and the request came again
    assert drive.sleeps, "the retry should have backed off first"
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert len(drive.files_named(delivery.target_path.rsplit("/", 1)[1])) == 1


def test_a_503_to_a_create_is_looked_up_then_sent_again_never_duplicated(drive: Any) -> None:
    # A 5xx to a write leaves its outcome unknown (core raises OutcomeUnknown): look, then write.
    injected = drive.app.add_fault({"status": 503, "method": "POST", "path": r"^/upload/drive/v3/files$"})
    [delivery] = drive.push([drive.document(1)])
    assert injected.seen == 2  # the create came once more, after the lookup found nothing
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert len(drive.files_named(delivery.target_path.rsplit("/", 1)[1])) == 1


def test_rate_limit_body_is_drives_documented_shape(drive: Any) -> None:
    import httpx

    drive.app.add_fault({"status": 403, "code": "userRateLimitExceeded"})
    body = httpx.get(f"{drive.url}/drive/v3/files").json()
    assert body == {"error": {"code": 403, "message": "User rate limit exceeded.", "errors": [
        {"domain": "usageLimits", "reason": "userRateLimitExceeded", "message": "User rate limit exceeded."}]}}


def test_server_error_on_a_chunk_is_retried_without_duplicating(drive: Any) -> None:
    drive.app.add_fault({"status": 500, "method": "PUT", "path": r"^/upload/", "after": 1})
    doc = drive.document(2, b"x" * (2 * 1024 * 1024))
    [delivery] = drive.push([doc])
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert drive.app.find_path("invoicesync/" + delivery.target_path).size == 2 * 1024 * 1024


def test_permission_refusal_fails_that_document_with_a_clear_message(drive: Any) -> None:
    drive.push([drive.document(1)])  # folders exist now
    drive.app.add_fault({"status": 403, "code": "insufficientFilePermissions", "method": "POST",
                         "path": r"^/upload/", "times": None})
    [delivery] = drive.push([drive.document(2)])
    assert delivery.status is DeliveryStatus.FAILED
    assert "no permission" in (delivery.message or "") and "insufficientFilePermissions" in (delivery.message or "")


def test_revoked_login_fails_the_batch_with_an_auth_error(drive: Any) -> None:
    from invoicesync import AuthError

    drive.app.oauth.refresh_tokens.clear()
    drive.app.oauth.expire_all()
    with pytest.raises(AuthError, match="refused"):
        drive.push([drive.document(1)])
