"""The pieces both sides rely on: q quoting and parsing, partial responses, multipart, error bodies."""

from __future__ import annotations

import httpx
import pytest
from invoicesync import RateLimited
from invoicesync.http import Verdict
from invoicesync_gdrive.client import app_property, quote
from invoicesync_gdrive.errors import DriveError, classify, parse_error
from invoicesync_gdrive.sandbox.fields import apply, parse_fields
from invoicesync_gdrive.sandbox.multipart import MultipartError, parse_related
from invoicesync_gdrive.sandbox.query import QueryError, parse

FILE = {"name": "O'Brien \\ Sons.pdf", "mimeType": "application/pdf", "parents": ["P1"], "trashed": False,
        "appProperties": {"doc": "billit:a:c:1", "role": "pdf"}, "createdTime": "2026-01-02T00:00:00.000Z"}


@pytest.mark.parametrize(("query", "expected"), [
    (f"name = {quote(FILE['name'])}", True),
    ("name = 'O\\'Brien'", False),
    ("'P1' in parents and trashed = false", True),
    ("'P2' in parents or mimeType = 'application/pdf'", True),
    ("not trashed = false", False),
    ("('P2' in parents or name contains 'Brien') and trashed = false", True),
    (app_property("doc", "billit:a:c:1") + " and " + app_property("role", "pdf"), True),
    (app_property("doc", "billit:a:c:1") + " and " + app_property("role", "ubl"), False),
    ("createdTime > '2026-01-01T00:00:00'", True),
    ("trashed = true or 'P1' in parents and name = 'x'", False),  # and binds tighter than or
])
def test_query_language(query: str, expected: bool) -> None:
    assert parse(query)(FILE) is expected


@pytest.mark.parametrize("query", ["name = ", "size > '3'", "name = 'unterminated", "trashed = 'no'",
                                   "appProperties has { key='a' }", "(name = 'a'", "'x' in owners_list"])
def test_bad_queries_are_refused(query: str) -> None:
    with pytest.raises(QueryError):
        parse(query)


def test_partial_responses() -> None:
    body = {"kind": "drive#fileList", "nextPageToken": "t", "files": [{"id": "1", "name": "a", "size": "3"}]}
    assert apply(body, parse_fields("nextPageToken,files(id,size)")) == {
        "nextPageToken": "t", "files": [{"id": "1", "size": "3"}]}
    assert apply(body, parse_fields("files/name")) == {"files": [{"name": "a"}]}
    assert apply(body, parse_fields("*")) == body


@pytest.mark.parametrize("newline", [b"\r\n", b"\n"])
def test_multipart_with_either_line_ending(newline: bytes) -> None:
    media = b"\r\n--not-the-boundary\r\n%PDF\x00\xff" + b"\r" * 3
    body = newline.join([b"--B1", b"Content-Type: application/json", b"", b'{"name": "x.pdf"}',
                         b"--B1", b"Content-Type: application/pdf", b"Content-Transfer-Encoding: binary", b"",
                         media, b"--B1--", b""])
    received = bytearray()
    pieces = [body[i:i + 7] for i in range(0, len(body), 7)]  # awkward chunking on purpose
    metadata, media_type = parse_related(pieces, 'multipart/related; boundary="B1"', received.extend)
    assert metadata == {"name": "x.pdf"} and media_type == "application/pdf"
    assert bytes(received) == media


def test_truncated_multipart_is_refused() -> None:
    with pytest.raises(MultipartError):
        parse_related([b"--B\r\nContent-Type: application/json\r\n\r\n{}\r\n--B\r\n\r\nabc"],
                      "multipart/related; boundary=B", lambda _: None)


def _response(status: int, reason: str, message: str = "m") -> httpx.Response:
    body = {"error": {"code": status, "message": message, "errors": [{"domain": "d", "reason": reason,
                                                                       "message": message}]}}
    return httpx.Response(status, json=body)


def test_only_rate_limit_403s_are_retried() -> None:
    assert classify(_response(403, "rateLimitExceeded")) is Verdict.RETRY
    assert classify(_response(403, "userRateLimitExceeded")) is Verdict.RETRY
    assert classify(_response(403, "storageQuotaExceeded")) is None
    assert classify(_response(404, "notFound")) is None


def test_errors_say_what_went_wrong() -> None:
    quota = parse_error(_response(403, "storageQuotaExceeded", "Service Accounts do not have storage quota."))
    assert isinstance(quota, DriveError) and "shared drive" in str(quota) and quota.reason == "storageQuotaExceeded"
    gone = parse_error(_response(404, "notFound", "File not found: abc."))
    assert "gone" in str(gone) and gone.status == 404
    assert isinstance(parse_error(_response(403, "userRateLimitExceeded")), RateLimited)
    assert "oops" in str(parse_error(httpx.Response(400, text="oops")))
