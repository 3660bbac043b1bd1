"""The Drive sandbox holds clients to Drive's limits (lenient only by option), over raw HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
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
