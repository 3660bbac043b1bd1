"""The Drive sandbox holds clients to Drive's limits (lenient only by option), over raw HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
from invoicesync import ConfigError, DeliveryStatus
from invoicesync_gdrive.sandbox import DriveSandbox

BIG = 5_000_001  # one byte over the smaller reading of "5 MB"


def _client(app: DriveSandbox, serve_sandbox: Callable[..., Any]) -> httpx.Client:
    url = serve_sandbox(app).url
    token = app.oauth.issue("user")["access_token"]
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _multipart(size: int) -> tuple[bytes, str]:
    head = (b'--b\r\nContent-Type: application/json\r\n\r\n{"name": "big.pdf"}\r\n'
            b"--b\r\nContent-Type: application/pdf\r\n\r\n")
    return head + b"x" * size + b"\r\n--b--\r\n", "multipart/related; boundary=b"


def test_simple_and_multipart_uploads_over_5_mb_are_refused_unless_lenient(serve_sandbox: Any) -> None:
    strict = DriveSandbox()
    lenient = DriveSandbox({"small_upload_limit": None})
    try:
        with _client(strict, serve_sandbox) as http:
            body, content_type = _multipart(BIG)
            refused = http.post("/upload/drive/v3/files", params={"uploadType": "multipart"}, content=body,
                                headers={"Content-Type": content_type})
            assert refused.status_code == 413 and refused.json()["error"]["errors"][0]["reason"] == "uploadTooLarge"
            media = http.post("/upload/drive/v3/files", params={"uploadType": "media"}, content=b"x" * BIG,
                              headers={"Content-Type": "application/pdf"})
            assert media.status_code == 413
            body, content_type = _multipart(BIG - 1)
            assert http.post("/upload/drive/v3/files", params={"uploadType": "multipart"}, content=body,
                             headers={"Content-Type": content_type}).status_code == 200
            assert len(strict.store.files) == 1  # the refused ones left nothing behind
        with _client(lenient, serve_sandbox) as http:
            body, content_type = _multipart(BIG)
            assert http.post("/upload/drive/v3/files", params={"uploadType": "multipart"}, content=body,
                             headers={"Content-Type": content_type}).status_code == 200
    finally:
        strict.store.close()
        lenient.store.close()


def test_app_properties_over_124_bytes_are_refused_on_update_too(serve_sandbox: Any) -> None:
    app = DriveSandbox()
    try:
        with _client(app, serve_sandbox) as http:
            created = http.post("/drive/v3/files", json={"name": "f", "appProperties": {"k": "v"}}).json()
            too_big = {"appProperties": {"invoicesync_role": "attachment:" + "n" * 100}}
            response = http.patch(f"/drive/v3/files/{created['id']}", content=json.dumps(too_big),
                                  headers={"Content-Type": "application/json"})
            assert response.status_code == 400 and "124 bytes" in response.json()["error"]["message"]
            assert app.store.files[created["id"]].app_properties == {"k": "v"}
    finally:
        app.store.close()


def test_a_resumable_upload_over_drives_5_tib_limit_is_refused(serve_sandbox: Any) -> None:
    app = DriveSandbox()
    try:
        with _client(app, serve_sandbox) as http:
            too_big = http.post("/upload/drive/v3/files", params={"uploadType": "resumable"}, content=b"{}",
                                headers={"Content-Type": "application/json",
                                         "X-Upload-Content-Length": str(5_497_558_138_881)})
            assert too_big.status_code == 413 and "Location" not in too_big.headers
            fits = http.post("/upload/drive/v3/files", params={"uploadType": "resumable"}, content=b"{}",
                             headers={"Content-Type": "application/json", "X-Upload-Content-Length": "10"})
            assert fits.status_code == 200 and fits.headers["Location"]
    finally:
        app.store.close()


def _create(http: httpx.Client, name: str, parent: str | None = None, **params: str) -> dict[str, Any]:
    body = {"name": name, **({"parents": [parent]} if parent else {})}
    response = http.post("/drive/v3/files", json=body, params={"fields": "id", **params})
    assert response.status_code == 200, response.text
    return dict(response.json())


def _changes(http: httpx.Client, token: str, **params: str) -> httpx.Response:
    return http.get("/drive/v3/changes", params={"pageToken": token, **params})


def test_the_changes_feed_reports_each_changed_file_once_in_its_latest_state(
        drive_app: DriveSandbox, serve_sandbox: Any) -> None:
    with _client(drive_app, serve_sandbox) as http:
        before = _create(http, "before.pdf")
        start = http.get("/drive/v3/changes/startPageToken").json()
        assert start["kind"] == "drive#startPageToken"
        token = start["startPageToken"]
        kept, trashed, gone = (_create(http, name) for name in ("kept.pdf", "trashed.pdf", "gone.pdf"))
        http.patch(f"/drive/v3/files/{kept['id']}", json={"name": "renamed.pdf"})
        http.patch(f"/drive/v3/files/{trashed['id']}", json={"trashed": True})
        drive_app.store.delete(gone["id"])
        fields = "nextPageToken,newStartPageToken,changes(fileId,removed,file(name,trashed))"
        pages, page_token = [], token
        while True:
            page = _changes(http, page_token, pageSize="2", fields=fields).json()
            pages.append(page)
            if "newStartPageToken" in page:
                break
            page_token = page["nextPageToken"]
        changes = [c for p in pages for c in p["changes"]]
        assert changes == [  # once each, in the order of their latest change; "before" not at all
            {"fileId": kept["id"], "removed": False, "file": {"name": "renamed.pdf", "trashed": False}},
            {"fileId": trashed["id"], "removed": False, "file": {"name": "trashed.pdf", "trashed": True}},
            {"fileId": gone["id"], "removed": True},  # a removed change carries no file
        ]
        assert len(pages) == 2 and before["id"] not in {c["fileId"] for c in changes}
        newest = pages[-1]["newStartPageToken"]
        assert _changes(http, newest).json()["changes"] == []
        assert _changes(http, token, includeRemoved="false").json()["changes"][-1]["fileId"] == trashed["id"]


def test_the_changes_feed_refuses_tokens_it_did_not_hand_out_or_that_expired(
        drive_app: DriveSandbox, serve_sandbox: Any) -> None:
    from invoicesync_gdrive.sandbox import SHARED_DRIVE_ID

    with _client(drive_app, serve_sandbox) as http:
        token = http.get("/drive/v3/changes/startPageToken").json()["startPageToken"]
        assert _changes(http, token).status_code == 200
        shared = http.get("/drive/v3/changes/startPageToken",
                          params={"driveId": SHARED_DRIVE_ID, "supportsAllDrives": "true"}).json()["startPageToken"]
        for bad, params in [(("A" if token[0] != "A" else "B") + token[1:], {}),  # altered
                            ("12345", {}),  # made up (real tokens look like numbers: ours are not them)
                            (shared, {}),  # a shared drive's token read as the user's
                            (token, {"driveId": SHARED_DRIVE_ID, "supportsAllDrives": "true"})]:
            refused = _changes(http, bad, **params)
            assert refused.status_code == 400, (bad, params)
            assert refused.json()["error"]["errors"][0]["location"] == "pageToken"
        assert http.get("/drive/v3/changes").json()["error"]["errors"][0]["reason"] == "required"
        assert _changes(http, token, pageSize="1001").status_code == 400
        assert _changes(http, token, spaces="nowhere").status_code == 400
        assert http.get("/drive/v3/changes/startPageToken", params={"driveId": SHARED_DRIVE_ID}).status_code == 400
        drive_app.store.expire_changes()
        assert _changes(http, token).status_code == 400  # expired: start over from a new token


def test_the_changes_feed_keeps_shared_drives_apart(drive_app: DriveSandbox, serve_sandbox: Any) -> None:
    from invoicesync_gdrive.sandbox import SHARED_DRIVE_ID

    all_drives = {"supportsAllDrives": "true"}
    with _client(drive_app, serve_sandbox) as http:
        user = http.get("/drive/v3/changes/startPageToken").json()["startPageToken"]
        shared = http.get("/drive/v3/changes/startPageToken",
                          params={"driveId": SHARED_DRIVE_ID, **all_drives}).json()["startPageToken"]
        mine = _create(http, "mine.pdf")
        team = _create(http, "team.pdf", SHARED_DRIVE_ID, **all_drives)

        def ids(response: httpx.Response) -> list[str]:
            assert response.status_code == 200, response.text
            return [c["fileId"] for c in response.json()["changes"]]

        assert ids(_changes(http, user)) == [mine["id"]]  # shared-drive items only when asked for
        assert ids(_changes(http, user, includeItemsFromAllDrives="true", **all_drives)) == [mine["id"], team["id"]]
        assert ids(_changes(http, shared, driveId=SHARED_DRIVE_ID, **all_drives)) == [team["id"]]


def test_a_drive_file_token_sees_only_what_the_app_made(serve_sandbox: Any) -> None:
    """The ``drive.file`` scope (our default) reaches only files this app created or was given:
    a folder made in the Drive web UI is "not found" to it (get, list, as a parent, as a move
    target), while a full ``drive`` token sees it. Seen leniently, a root_folder_id the app can
    never write to would pass every test here and fail on Google."""
    app = DriveSandbox()
    try:
        theirs = app.user_folder("Accounting")
        with _client(app, serve_sandbox) as http:
            ours = http.post("/drive/v3/files", json={"name": "Accounting",
                                                      "mimeType": "application/vnd.google-apps.folder"}).json()
            assert http.get(f"/drive/v3/files/{theirs.id}").status_code == 404
            listed = http.get("/drive/v3/files", params={"q": "name = 'Accounting'"}).json()["files"]
            assert [f["id"] for f in listed] == [ours["id"]]
            assert http.post("/drive/v3/files", json={"name": "x", "parents": [theirs.id]}).status_code == 404
            body, content_type = _multipart(10)
            into = http.post("/upload/drive/v3/files", params={"uploadType": "multipart"},
                             content=body.replace(b'{"name": "big.pdf"}',
                                                  json.dumps({"name": "a.pdf", "parents": [theirs.id]}).encode()),
                             headers={"Content-Type": content_type})
            assert into.status_code == 404
            moved = http.patch(f"/drive/v3/files/{ours['id']}", params={"addParents": theirs.id,
                                                                         "removeParents": "root"}, json={})
            assert moved.status_code == 404
            assert http.patch(f"/drive/v3/files/{theirs.id}", json={"trashed": True}).status_code == 404
        full = app.oauth.issue("user", "https://www.googleapis.com/auth/drive")["access_token"]
        with httpx.Client(base_url=serve_sandbox(app).url, headers={"Authorization": f"Bearer {full}"}) as http:
            assert http.get(f"/drive/v3/files/{theirs.id}").status_code == 200
            listed = http.get("/drive/v3/files", params={"q": "name = 'Accounting'"}).json()["files"]
            assert {f["id"] for f in listed} == {ours["id"], theirs.id}
    finally:
        app.store.close()


def test_a_root_folder_the_app_cannot_see_is_a_setup_error(drive: Any) -> None:
    """A ``root_folder_id`` made in the Drive web UI is invisible to our ``drive.file`` login: the
    sync says how to fix the setup rather than write nothing or somewhere else."""
    theirs = drive.app.user_folder("Made by hand")
    drive.configure(root_folder_id=theirs.id)
    try:
        [delivery] = drive.push([drive.document(1)])
    except ConfigError as exc:
        message = str(exc)
    else:
        assert delivery.status is DeliveryStatus.FAILED
        message = delivery.message
    assert "drive.file" in message and theirs.id in message
    assert [f.name for f in drive.app.store.files.values() if f.mime_type != "application/vnd.google-apps.folder"] == []
