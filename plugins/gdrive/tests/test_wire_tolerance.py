"""What the client sends and how it reads answers, where a Drive server could differ from our sandbox.

Each test bends the sandbox towards another legitimate reading of Google's documentation (a
relative session URI, an answer that ignores ``fields``, an upper-case checksum, a lost answer
to a chunk) or records exactly what the client sent, so a shared misreading cannot hide.
"""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest
from invoicesync import AuthError, DeliveryStatus, RateLimited, ServerError
from invoicesync.http import Verdict
from invoicesync_gdrive.client import _range_end
from invoicesync_gdrive.errors import DriveError, classify, parse_error
from invoicesync_gdrive.sandbox import SHARED_DRIVE_ID, DriveSandbox
from invoicesync_gdrive.sandbox.store import DriveFile, DriveStore
from invoicesync_gdrive.sandbox.uploads import Uploads
from invoicesync_gdrive.settings import GDriveSettings
from pydantic import ValidationError

MIB = 1024 * 1024


def test_relative_session_uri_is_resolved_against_the_request(drive: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = Uploads.open

    def relative_open(self: Uploads, *args: Any) -> str:
        return "/" + real_open(self, *args).split("/", 3)[3]  # "/upload/drive/v3/files?uploadType=..."

    monkeypatch.setattr(Uploads, "open", relative_open)
    [delivery] = drive.push([drive.document(1, b"r" * (2 * MIB))])
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert drive.app.count("PUT", r"^/upload/drive/v3/files$") == 4  # 2 MiB in 512 KiB chunks, none lost


@pytest.mark.parametrize("size", [1000, 2 * MIB], ids=["multipart", "resumable"])
def test_upload_answer_with_only_default_fields_is_read_again(drive: Any, monkeypatch: pytest.MonkeyPatch,
                                                              size: int) -> None:
    """A server that answers an upload with ``kind,id,name,mimeType`` only (ignoring ``fields``)."""
    real_file, real_open = DriveSandbox._file, Uploads.open

    def default_fields(self: DriveSandbox, request: Any, file: DriveFile) -> Any:
        if request.path.startswith("/upload/"):
            request.query.pop("fields", None)
        return real_file(self, request, file)

    def open_without_fields(self: Uploads, request: Any, *args: Any) -> str:
        uri = real_open(self, request, *args)
        self.sessions[uri.rsplit("=", 1)[1]].params.pop("fields", None)
        return uri

    monkeypatch.setattr(DriveSandbox, "_file", default_fields)
    monkeypatch.setattr(Uploads, "open", open_without_fields)
    doc = drive.document(2, b"d" * size)
    [delivery] = drive.push([doc])
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert delivery.extra["files"]["pdf"]["md5"] == hashlib.md5(b"d" * size).hexdigest()
    [again] = drive.push([doc])
    assert again.status is DeliveryStatus.UNCHANGED


def test_md5_checksum_is_compared_without_case(drive: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    real = DriveFile.resource

    def upper(self: DriveFile) -> dict[str, Any]:
        body = real(self)
        if body.get("md5Checksum"):
            body["md5Checksum"] = body["md5Checksum"].upper()
        return body

    monkeypatch.setattr(DriveFile, "resource", upper)
    doc = drive.document(3)
    [first] = drive.push([doc])
    assert first.status is DeliveryStatus.DELIVERED, first.message
    writes = drive.uploads()
    [again] = drive.push([doc])
    assert again.status is DeliveryStatus.UNCHANGED and drive.uploads() == writes


def test_lost_answer_to_a_chunk_is_recovered_with_a_status_query(drive: Any) -> None:
    size = 2 * MIB
    # The second chunk is stored, then the connection closes before the answer.
    drive.app.add_fault({"action": "drop_after", "method": "PUT", "path": r"^/upload/", "after": 1})
    [delivery] = drive.push([drive.document(4, b"c" * size)])
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert drive.app.uploads.bytes_received == size  # the stored chunk was asked about, not sent again
    # 4 chunks + 1 status query; the dropped PUT is not in the log (it got no answer).
    assert drive.app.count("PUT", r"^/upload/") == 4


def _record_upload_queries(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, list[str]]]:
    seen: list[dict[str, list[str]]] = []
    real = Uploads.multipart

    def recording(self: Uploads, request: Any) -> Any:
        seen.append({k: list(v) for k, v in request.query.items()})
        return real(self, request)

    monkeypatch.setattr(Uploads, "multipart", recording)
    return seen


def test_rename_in_place_sends_no_parent_changes(drive: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    [first] = drive.push([drive.document(5, counterparty="Old Name")])
    seen = _record_upload_queries(monkeypatch)
    [second] = drive.push([drive.document(5, counterparty="New Name")])
    assert second.target_id == first.target_id
    [patch] = seen
    assert "addParents" not in patch and "removeParents" not in patch


def test_move_sends_exactly_the_parent_changes(drive: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    [first] = drive.push([drive.document(6)])
    old_folder = first.extra["folder_id"]
    drive.configure(template="{company}/moved/{date}_{counterparty}_{number}.{ext}")
    seen = _record_upload_queries(monkeypatch)
    [second] = drive.push([drive.document(6)])
    assert second.target_id == first.target_id and second.extra["folder_id"] != old_folder
    [patch] = seen
    assert patch["addParents"] == [second.extra["folder_id"]] and patch["removeParents"] == [old_folder]
    assert patch["uploadType"] == ["multipart"] and patch["supportsAllDrives"] == ["true"]


def _error(status: int, error: dict[str, Any]) -> httpx.Response:
    return httpx.Response(status, json={"error": error})


def test_retry_is_decided_by_reason_in_either_error_form() -> None:
    legacy = {"code": 403, "message": "m", "errors": [{"domain": "global", "reason": "backendError", "message": "m"}]}
    assert classify(_error(403, legacy)) is Verdict.RETRY
    assert isinstance(parse_error(_error(403, legacy)), ServerError)
    # Newer Google errors: no errors[], the reason in an ErrorInfo detail, upper-case.
    info = {"code": 403, "message": "Quota exceeded", "status": "PERMISSION_DENIED",
            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "RATE_LIMIT_EXCEEDED"}]}
    assert classify(_error(403, info)) is Verdict.RETRY
    assert isinstance(parse_error(_error(403, info)), RateLimited)
    for final in ("insufficientFilePermissions", "notFound", "storageQuotaExceeded"):
        body = {"code": 403, "message": "m", "errors": [{"domain": "global", "reason": final, "message": "m"}]}
        assert classify(_error(403, body)) is None


def test_a_401_after_the_refresh_is_an_auth_error() -> None:
    body = {"code": 401, "message": "Invalid Credentials",
            "errors": [{"domain": "global", "reason": "authError", "message": "Invalid Credentials",
                        "locationType": "header", "location": "Authorization"}]}
    error = parse_error(_error(401, body))
    assert isinstance(error, AuthError) and "connect" in str(error)


def test_multipart_threshold_stays_within_drives_limit() -> None:
    assert GDriveSettings(client_id="x").resumable_threshold <= 5_000_000
    with pytest.raises(ValidationError):
        GDriveSettings(client_id="x", resumable_threshold=8 * MIB)


@pytest.mark.parametrize(("header", "received"), [
    (None, 0), ("", 0), ("bytes=0-262143", 262144), ("Bytes = 0-9", 10), ("0-99", 100),
])
def test_308_range_header_is_read_leniently(header: str | None, received: int) -> None:
    assert _range_end(header) == received


def test_308_range_not_starting_at_zero_is_refused() -> None:
    with pytest.raises(DriveError):
        _range_end("bytes=5-9")


def test_root_folder_in_a_shared_drive_confines_lookups_to_that_drive(drive: Any,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    root = drive.app.store.create({"name": "Team invoices", "mimeType": "application/vnd.google-apps.folder",
                                   "parents": [SHARED_DRIVE_ID]}, None, None, all_drives=True)
    drive.configure(root_folder_id=root.id)  # a user login, no shared_drive_id set
    searched: list[str | None] = []
    real = DriveStore.search

    def recording(self: DriveStore, predicate: Any, *, include_shared: bool, drive_id: str | None) -> Any:
        searched.append(drive_id)
        return real(self, predicate, include_shared=include_shared, drive_id=drive_id)

    monkeypatch.setattr(DriveStore, "search", recording)
    for _ in range(2):  # the second run reads the drive from the cached root
        [delivery] = drive.push([drive.document(7)])
        assert delivery.status in {DeliveryStatus.DELIVERED, DeliveryStatus.UNCHANGED}, delivery.message
    assert searched and set(searched) == {SHARED_DRIVE_ID}  # corpora=drive&driveId=... on every list
    assert drive.app.find_path("Team invoices/" + delivery.target_path, start=SHARED_DRIVE_ID) is not None
