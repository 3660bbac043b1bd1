"""Reading answers tolerantly where the documentation allows more than one form or leaves a
field optional: void union members as bare strings, a missing ``error`` union (``error_summary``
only), mislabelled JSON, ``retry_after`` beside ``error``, optional FileMetadata fields, the
nested form of a ``finish_batch_v2`` success, numeric strings for ``size``."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from invoicesync import DeliveryStatus, PushRequest
from invoicesync.http import Verdict
from invoicesync_dropbox.client import _batch_entry, file_hash, file_size, is_file
from invoicesync_dropbox.errors import classify, parse_error, tag_chain


def _answer(status: int, body: Any, content_type: str = "application/json", **headers: str) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.Response(status, content=raw, headers={"Content-Type": content_type, **headers})


@pytest.mark.parametrize(("error", "tags"), [
    ({".tag": "path", "path": {".tag": "not_found"}}, ["path", "not_found"]),
    ({".tag": "path", "path": "not_found"}, ["path", "not_found"]),  # void member, shorthand
    ("too_many_requests", ["too_many_requests"]),
    ({".tag": "path", "reason": {".tag": "conflict", "conflict": "file"}, "upload_session_id": "s"},
     ["path", "conflict", "file"]),
])
def test_union_tags_in_both_encodings(error: Any, tags: list[str]) -> None:
    assert tag_chain(error) == tags


def test_error_summary_is_the_fallback_when_the_union_is_missing() -> None:
    error = parse_error(_answer(409, {"error_summary": "lookup_failed/incorrect_offset/..."}))
    assert error.tags == ["lookup_failed", "incorrect_offset"]
    assert "different offset" in str(error)


def test_json_error_with_a_wrong_content_type_is_still_read() -> None:
    body = {"error_summary": "path/conflict/file/..", "error": {".tag": "path", "path": {
        ".tag": "conflict", "conflict": {".tag": "file"}}}}
    error = parse_error(_answer(409, body, "text/plain; charset=utf-8"))
    assert error.tags == ["path", "conflict", "file"] and "already exists" in str(error)
    plain = parse_error(_answer(400, b"Error in call to API function \"files/upload\": bad", "text/plain"))
    assert plain.tags == [] and "files/upload" in str(plain)


def test_retry_after_is_taken_from_the_body_in_either_place() -> None:
    inside = _answer(429, {"error": {"reason": {".tag": "too_many_requests"}, "retry_after": 3}})
    beside = _answer(429, {"error": {"reason": {".tag": "too_many_requests"}}, "retry_after": 4})
    header = _answer(429, {"error": {"retry_after": 9}}, **{"Retry-After": "2"})
    assert [classify(r) for r in (inside, beside, header)] == [Verdict.RETRY] * 3
    assert [r.headers["Retry-After"] for r in (inside, beside, header)] == ["3", "4", "2"]  # header wins


def test_expired_token_named_only_in_the_summary_still_refreshes() -> None:
    assert classify(_answer(401, {"error_summary": "expired_access_token/.."})) is Verdict.REFRESH
    assert classify(_answer(401, {"error": {".tag": "missing_scope", "required_scope": "x"}})) is Verdict.OK


def test_file_metadata_fields_are_read_loosely() -> None:
    assert file_size({"size": 12}) == 12 and file_size({"size": "12"}) == 12
    assert file_size({"size": True}) is None and file_size({}) is None
    assert file_hash({"content_hash": "AB" * 32}) == "ab" * 32 and file_hash({}) is None
    assert is_file({".tag": "file"}) and not is_file({".tag": "folder"}) and not is_file({".tag": "deleted"})
    assert is_file({"rev": "a1c10ce0dd78", "size": 1}) and not is_file({"name": "2024", "id": "id:x"})


def test_batch_success_in_the_nested_form_is_read() -> None:
    flat = {".tag": "success", "id": "id:1", "size": 3}
    nested = {".tag": "success", "success": {"id": "id:1", "size": 3}}
    assert _batch_entry(flat) == _batch_entry(nested) == {".tag": "success", "id": "id:1", "size": 3}


def test_not_found_in_shorthand_form_counts_as_free(env: Any) -> None:
    env.configure(batch_commit=False)
    shorthand = {"error_summary": "path/not_found/..", "error": {".tag": "path", "path": "not_found"}}
    env.app.add_fault({"status": 409, "path": r"/2/files/get_metadata$", "body": shorthand, "times": 1})
    [delivery] = env.push([env.document("T-1", pdf=b"%PDF t1")])
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message


def test_upload_answer_without_the_optional_content_hash_is_accepted(env: Any,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from invoicesync_dropbox.sandbox.routes import DropboxRoutes

    real = DropboxRoutes.upload

    def upload_without_hash(self: Any, request: Any, arg: Any) -> Any:
        response = real(self, request, arg)
        assert isinstance(response.body, bytes)
        meta = json.loads(response.body)
        meta.pop("content_hash")
        meta["size"] = str(meta["size"])
        response.body = json.dumps(meta).encode()
        return response

    monkeypatch.setattr(DropboxRoutes, "upload", upload_without_hash)
    env.configure(batch_commit=False)
    [delivery] = env.push([env.document("T-2", pdf=b"%PDF t2")])
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message


def test_overwrite_without_a_rev_to_pin_keeps_both(env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    env.configure(batch_commit=False, on_change="overwrite")
    document = env.document("T-3", pdf=b"%PDF v1")
    [first] = env.push([document])
    from invoicesync_dropbox.sandbox.store import Entry

    real = Entry.metadata
    monkeypatch.setattr(Entry, "metadata", lambda self, *, tagged: {
        k: v for k, v in real(self, tagged=tagged).items() if k != "rev"})
    changed = document.model_copy(update={"files": env.document("T-3", pdf=b"%PDF v2").files})
    [second] = env.push([PushRequest(document=changed, previous=first)])
    assert second.status is DeliveryStatus.DELIVERED, second.message
    assert second.target_path != first.target_path  # never a blind replace
    assert env.stored(first.target_path or "") == b"%PDF v1"
