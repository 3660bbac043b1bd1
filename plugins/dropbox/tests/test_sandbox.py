"""The sandbox's Dropbox rules, over raw HTTP: shapes an independent client would rely on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from invoicesync_dropbox.content_hash import content_hash


@pytest.fixture
def http(env: Any) -> Iterator[httpx.Client]:
    token = json.loads(env.app.account_secrets()["oauth_token"])["access_token"]
    with httpx.Client(base_url=env.url, headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


def rpc(http: httpx.Client, route: str, arg: Any) -> httpx.Response:
    return http.post(f"/2/{route}", content=json.dumps(arg), headers={"Content-Type": "application/json"})


def upload(http: httpx.Client, route: str, arg: Any, body: bytes) -> httpx.Response:
    return http.post(f"/2/{route}", content=body, headers={
        "Content-Type": "application/octet-stream", "Dropbox-API-Arg": json.dumps(arg)})


def test_success_is_exactly_application_json(http: httpx.Client) -> None:
    response = upload(http, "files/upload", {"path": "/a.txt", "mode": "add"}, b"a")
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
    assert ".tag" not in response.json()  # FileMetadata of an upload carries no tag
    assert rpc(http, "files/get_metadata", {"path": "/A.TXT"}).json()[".tag"] == "file"


def test_not_found_is_a_409_union_with_summary(http: httpx.Client) -> None:
    response = rpc(http, "files/get_metadata", {"path": "/missing"})
    assert response.status_code == 409
    assert response.json() == {"error_summary": "path/not_found/..",
                               "error": {".tag": "path", "path": {".tag": "not_found"}}}


def test_bad_input_is_plain_text_400(http: httpx.Client) -> None:
    assert rpc(http, "files/get_metadata", {"path": ""}).text == "The root folder is unsupported."
    response = upload(http, "files/upload", {"path": "no-slash.txt"}, b"x")
    assert response.status_code == 400 and "did not match pattern" in response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    wrong_type = http.post("/2/files/get_metadata", content=b"{}", headers={"Content-Type": "text/xml"})
    assert wrong_type.status_code == 400


def test_the_root_is_the_empty_string_and_slash_is_bad_input(http: httpx.Client) -> None:
    """API v2 names the root ``""``; ``"/"`` is a 400 (dropbox-sdk-obj-c#32, dropbox-sdk-dotnet#192),
    not a 409 ``malformed_path`` union a client might handle as "nothing there"."""
    for route in ("files/list_folder", "files/get_metadata"):
        response = rpc(http, route, {"path": "/"})
        assert response.status_code == 400 and response.headers["Content-Type"].startswith("text/plain"), route
        assert "Specify the root folder as an empty string" in response.text
    assert rpc(http, "files/list_folder", {"path": ""}).status_code == 200


def test_arg_may_come_in_the_query_and_mode_in_both_forms(http: httpx.Client) -> None:
    response = http.post("/2/files/upload", params={"arg": json.dumps({"path": "/q.txt", "mode": {".tag": "add"}})},
                         content=b"q", headers={"Content-Type": "application/octet-stream"})
    assert response.status_code == 200
    overwrite = upload(http, "files/upload", {"path": "/q.txt", "mode": "overwrite"}, b"qq")
    assert overwrite.json()["size"] == 2


def test_write_modes(http: httpx.Client) -> None:
    first = upload(http, "files/upload", {"path": "/m.txt"}, b"one").json()
    same = upload(http, "files/upload", {"path": "/m.txt"}, b"one")
    assert same.status_code == 200 and same.json()["rev"] == first["rev"]  # identical: nothing written
    conflict = upload(http, "files/upload", {"path": "/m.txt"}, b"two")
    assert conflict.status_code == 409
    body = conflict.json()
    assert body["error_summary"].startswith("path/conflict/file/")
    assert body["error"]["reason"] == {".tag": "conflict", "conflict": {".tag": "file"}}
    assert body["error"]["upload_session_id"].startswith("pid_upload_session:")
    stale = upload(http, "files/upload", {"path": "/m.txt", "mode": {".tag": "update", "update": "0123456789"}}, b"2")
    assert stale.status_code == 409
    update = upload(http, "files/upload", {"path": "/m.txt", "mode": {".tag": "update", "update": first["rev"]}},
                    b"two")
    assert update.status_code == 200 and update.json()["id"] == first["id"]
    renamed = upload(http, "files/upload", {"path": "/m.txt", "autorename": True}, b"three").json()
    assert renamed["path_display"] == "/m (2).txt"


def test_file_in_the_way_of_a_folder(http: httpx.Client) -> None:
    upload(http, "files/upload", {"path": "/f"}, b"file")
    response = upload(http, "files/upload", {"path": "/f/inside.txt"}, b"x")
    assert response.json()["error"]["reason"]["conflict"][".tag"] == "file_ancestor"


def test_disallowed_name(http: httpx.Client) -> None:
    response = upload(http, "files/upload", {"path": "/a\\b.txt"}, b"x")
    assert response.status_code == 409 and response.json()["error_summary"].startswith("path/disallowed_name")


def test_content_hash_is_verified(http: httpx.Client) -> None:
    bad = upload(http, "files/upload", {"path": "/h.txt", "content_hash": content_hash(b"other")}, b"mine")
    assert bad.status_code == 409 and bad.json()["error"] == {".tag": "content_hash_mismatch"}
    good = upload(http, "files/upload", {"path": "/h.txt", "content_hash": content_hash(b"mine")}, b"mine")
    assert good.status_code == 200 and good.json()["content_hash"] == content_hash(b"mine")


def test_session_offsets_and_hash_per_call(http: httpx.Client) -> None:
    session = upload(http, "files/upload_session/start", {"close": False}, b"12345").json()["session_id"]
    cursor = {"session_id": session, "offset": 3}
    wrong = upload(http, "files/upload_session/append_v2", {"cursor": cursor}, b"678")
    assert wrong.json()["error"] == {".tag": "incorrect_offset", "correct_offset": 5}
    cursor["offset"] = 5
    mismatch = upload(http, "files/upload_session/append_v2",
                      {"cursor": cursor, "content_hash": content_hash(b"nope")}, b"678")
    assert mismatch.json()["error"] == {".tag": "content_hash_mismatch"}  # and the bytes were dropped
    assert upload(http, "files/upload_session/append_v2",
                  {"cursor": cursor, "content_hash": content_hash(b"678")}, b"678").status_code == 200
    finish_wrong = upload(http, "files/upload_session/finish",
                          {"cursor": {"session_id": session, "offset": 5}, "commit": {"path": "/s.bin"}}, b"")
    assert finish_wrong.json()["error"] == {".tag": "lookup_failed",
                                            "lookup_failed": {".tag": "incorrect_offset", "correct_offset": 8}}
    assert finish_wrong.json()["error_summary"].startswith("lookup_failed/incorrect_offset/")
    done = upload(http, "files/upload_session/finish",
                  {"cursor": {"session_id": session, "offset": 8}, "commit": {"path": "/s.bin"}}, b"9")
    assert done.json()["size"] == 9 and done.json()["content_hash"] == content_hash(b"123456789")
    gone = upload(http, "files/upload_session/append_v2", {"cursor": {"session_id": session, "offset": 9}}, b"")
    assert gone.json()["error"] == {".tag": "not_found"}


def test_batch_needs_closed_sessions(http: httpx.Client) -> None:
    open_session = upload(http, "files/upload_session/start", {}, b"open").json()["session_id"]
    closed = upload(http, "files/upload_session/start", {"close": True}, b"closed").json()["session_id"]
    result = rpc(http, "files/upload_session/finish_batch_v2", {"entries": [
        {"cursor": {"session_id": open_session, "offset": 4}, "commit": {"path": "/b/open"}},
        {"cursor": {"session_id": closed, "offset": 6}, "commit": {"path": "/b/closed"}},
    ]}).json()["entries"]
    not_closed = {".tag": "lookup_failed", "lookup_failed": {".tag": "not_closed"}}
    assert result[0] == {".tag": "failure", "failure": not_closed}
    assert result[1][".tag"] == "success" and result[1]["path_display"] == "/b/closed"
    append_closed = upload(http, "files/upload_session/append_v2", {"cursor": {"session_id": closed, "offset": 6}},
                           b"x")
    assert append_closed.json()["error"] == {".tag": "not_found"}  # committed sessions are gone


def test_auth_errors(env: Any, http: httpx.Client) -> None:
    anonymous = httpx.post(f"{env.url}/2/files/get_metadata", json={"path": "/x"})
    assert anonymous.status_code == 401 and anonymous.json()["error"] == {".tag": "invalid_access_token"}
    assert anonymous.headers["Content-Type"] == "application/json"
    env.app.oauth.expire_access_tokens()
    expired = rpc(http, "files/get_metadata", {"path": "/x"})
    assert expired.status_code == 401 and expired.json()["error_summary"] == "expired_access_token/.."


def test_missing_scope(make_env: Any) -> None:
    env = make_env(scopes="files.metadata.read")
    token = json.loads(env.app.account_secrets()["oauth_token"])["access_token"]
    response = httpx.post(f"{env.url}/2/files/upload", content=b"x", headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream",
        "Dropbox-API-Arg": json.dumps({"path": "/x"})})
    assert response.status_code == 401
    assert response.json()["error"] == {".tag": "missing_scope", "required_scope": "files.content.write"}


def test_lock_contention_is_a_429_rate_limit_error(make_env: Any) -> None:
    env = make_env(write_limit=0)  # every write contends
    token = json.loads(env.app.account_secrets()["oauth_token"])["access_token"]
    response = httpx.post(f"{env.url}/2/files/upload", content=b"x", headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream",
        "Dropbox-API-Arg": json.dumps({"path": "/x"})})
    assert response.status_code == 429 and response.headers["Retry-After"] == "0"
    assert response.json()["error"] == {"reason": {".tag": "too_many_write_operations"}, "retry_after": 0}
    assert env.app.namespace.get("/x") is None


def test_files_live_on_disk(http: httpx.Client, env: Any) -> None:
    upload(http, "files/upload", {"path": "/disk.bin"}, b"on disk")
    entry = env.app.namespace.get("/DISK.bin")
    assert entry.blob.is_file() and entry.blob.read_bytes() == b"on disk"
    assert str(entry.blob).startswith(str(env.app.root))


def test_list_folder_pages(http: httpx.Client) -> None:
    for i in range(5):
        upload(http, "files/upload", {"path": f"/list/{i}.txt"}, str(i).encode())
    first = rpc(http, "files/list_folder", {"path": "/list", "limit": 3}).json()
    assert len(first["entries"]) == 3 and first["has_more"]
    rest = rpc(http, "files/list_folder/continue", {"cursor": first["cursor"]}).json()
    assert [e["name"] for e in first["entries"] + rest["entries"]] == [f"{i}.txt" for i in range(5)]
    assert not rest["has_more"]


def test_list_folder_continue_reports_changes_after_the_listing(http: httpx.Client, env: Any) -> None:
    """A finished listing's cursor is a change feed: new and changed files, and deleted ones as
    ``deleted`` entries; nothing at all when nothing changed."""
    for name in ("a", "b", "c"):
        upload(http, "files/upload", {"path": f"/feed/sub/{name}.txt"}, name.encode())
    listing = rpc(http, "files/list_folder", {"path": "/feed", "recursive": True, "limit": 2}).json()
    cursor, seen = listing["cursor"], [e["path_lower"] for e in listing["entries"]]
    while listing["has_more"]:
        listing = rpc(http, "files/list_folder/continue", {"cursor": cursor}).json()
        cursor, seen = listing["cursor"], seen + [e["path_lower"] for e in listing["entries"]]
    assert seen == ["/feed/sub", "/feed/sub/a.txt", "/feed/sub/b.txt", "/feed/sub/c.txt"]
    quiet = rpc(http, "files/list_folder/continue", {"cursor": cursor}).json()
    assert quiet["entries"] == [] and not quiet["has_more"]

    upload(http, "files/upload", {"path": "/feed/sub/d.txt"}, b"d")
    upload(http, "files/upload", {"path": "/elsewhere.txt"}, b"not under /feed")
    rpc(http, "files/delete_v2", {"path": "/feed/sub/a.txt"})
    changes = rpc(http, "files/list_folder/continue", {"cursor": quiet["cursor"]}).json()
    assert [(e[".tag"], e["path_lower"]) for e in changes["entries"]] == [
        ("file", "/feed/sub/d.txt"), ("deleted", "/feed/sub/a.txt")]


def test_a_reset_cursor_is_refused_with_reset(http: httpx.Client, env: Any) -> None:
    upload(http, "files/upload", {"path": "/r/a.txt"}, b"a")
    cursor = rpc(http, "files/list_folder", {"path": "/r"}).json()["cursor"]
    env.app.namespace.reset_cursors()
    response = rpc(http, "files/list_folder/continue", {"cursor": cursor})
    assert response.status_code == 409 and response.json()["error"] == {".tag": "reset"}


@pytest.mark.parametrize("arg", [{"limit": 0}, {"limit": 2001}, {"limit": True}, {"recursive": "yes"}])
def test_list_folder_arguments_out_of_range_are_bad_input(http: httpx.Client, arg: dict[str, Any]) -> None:
    assert rpc(http, "files/list_folder", {"path": "", **arg}).status_code == 400


@pytest.mark.parametrize("name", ["a?.pdf", 'say "hi".pdf', "a<b>.pdf", "c:d.pdf", "pipe|.pdf", "star*.pdf",
                                  "dot.", "space ", "folder./x.pdf"])
def test_names_dropbox_advises_against_are_refused_unless_lenient(make_env: Any, name: str) -> None:
    strict, lenient = make_env(), make_env(lenient_names=True)
    for env, status in ((strict, 409), (lenient, 200)):
        token = json.loads(env.app.account_secrets()["oauth_token"])["access_token"]
        with httpx.Client(base_url=env.url, headers={"Authorization": f"Bearer {token}"}) as http:
            response = upload(http, "files/upload", {"path": f"/{name}"}, b"x")
            assert response.status_code == status, response.text
            if status == 409:
                assert response.json()["error_summary"].startswith("path/disallowed_name")


def test_a_path_over_260_utf16_units_is_refused(http: httpx.Client) -> None:
    folder = "/" + "d" * 200
    assert upload(http, "files/upload", {"path": folder + "/" + "e" * 54 + ".pdf"}, b"x").status_code == 200
    emoji = "\U0001F600" * 28  # 28 characters, but 56 UTF-16 units: the path is 234 characters, 262 units
    response = upload(http, "files/upload", {"path": folder + "/" + emoji + ".pdf"}, b"x")
    assert response.status_code == 409 and response.json()["error_summary"].startswith("path/disallowed_name")


def test_a_session_cannot_grow_past_the_file_size_limit(env: Any, http: httpx.Client) -> None:
    env.app.sessions.max_file = 10
    start = upload(http, "files/upload_session/start", {"close": False}, b"12345678")
    session = start.json()["session_id"]
    refused = upload(http, "files/upload_session/append_v2",
                     {"cursor": {"session_id": session, "offset": 8}, "close": False}, b"abc")
    assert refused.status_code == 409 and refused.json()["error"] == {".tag": "too_large"}
    fits = upload(http, "files/upload_session/append_v2",
                  {"cursor": {"session_id": session, "offset": 8}, "close": False}, b"ab")
    assert fits.status_code == 200  # the refused bytes were not kept: the offset did not move


def test_move_and_delete_routes(http: httpx.Client, env: Any) -> None:
    first = upload(http, "files/upload", {"path": "/A/x.pdf"}, b"x").json()
    upload(http, "files/upload", {"path": "/B/x.pdf"}, b"other")
    moved = rpc(http, "files/move_v2", {"from_path": "/a/X.PDF", "to_path": "/B/x.pdf", "autorename": True})
    assert moved.status_code == 200 and moved.json()["metadata"]["path_display"] == "/B/x (2).pdf"
    assert moved.json()["metadata"]["id"] == first["id"]  # a move keeps the file's id
    taken = rpc(http, "files/move_v2", {"from_path": "/B/x (2).pdf", "to_path": "/B/x.pdf"})
    assert taken.json()["error_summary"].startswith("to/conflict/file")
    missing = rpc(http, "files/move_v2", {"from_path": "/nope", "to_path": "/B/y.pdf"})
    assert missing.json()["error_summary"].startswith("from_lookup/not_found")
    stale = rpc(http, "files/delete_v2", {"path": "/B/x.pdf", "parent_rev": "0123456789"})
    assert stale.json()["error_summary"].startswith("path_write/conflict")
    gone = rpc(http, "files/delete_v2", {"path": "/B/x.pdf"})
    assert gone.status_code == 200 and gone.json()["metadata"][".tag"] == "file"
    assert rpc(http, "files/delete_v2", {"path": "/B/x.pdf"}).json()["error_summary"].startswith(
        "path_lookup/not_found")
    assert "/b/x.pdf" in env.app.namespace.deleted


@pytest.mark.parametrize("stamp", ["2024-05-12T15:50:38.123Z", "2024-05-12T15:50:38+00:00", "yesterday", 12])
def test_client_modified_must_be_utc_seconds(http: httpx.Client, stamp: Any) -> None:
    response = upload(http, "files/upload", {"path": "/m.txt", "client_modified": stamp}, b"x")
    assert response.status_code == 400 and "client_modified" in response.text
    ok = upload(http, "files/upload", {"path": "/m.txt", "client_modified": "2024-05-12T15:50:38Z"}, b"x")
    assert ok.status_code == 200 and ok.json()["client_modified"] == "2024-05-12T15:50:38Z"
