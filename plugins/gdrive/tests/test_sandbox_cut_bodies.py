"""A request whose body stops short (the client was killed mid-send) creates nothing in the Drive
sandbox: Drive acts on a request only once all of it has arrived. Before, an empty metadata body
became a 0-byte "Untitled" file at the root of My Drive."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from invoicesync.sandbox import DropConnection, Request
from invoicesync_gdrive.sandbox import DriveSandbox

BOUNDARY = "cut"
METADATA = {"name": "INV-1.pdf", "parents": ["root"]}
MULTIPART = (f"--{BOUNDARY}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{json.dumps(METADATA)}\r\n"
             f"--{BOUNDARY}\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.7 invoice\r\n--{BOUNDARY}--\r\n").encode()
MULTIPART_TYPE = f"multipart/related; boundary={BOUNDARY}"


@pytest.fixture
def app() -> Iterator[DriveSandbox]:
    sandbox = DriveSandbox()
    yield sandbox
    sandbox.store.close()


def _request(app: DriveSandbox, method: str, target: str, body: bytes, sent: int, content_type: str) -> Request:
    """What the sandbox server hands the app when the connection ends after ``sent`` body bytes."""
    token = app.oauth.issue("user")["access_token"]
    headers = httpx.Headers({"Authorization": f"Bearer {token}", "Content-Type": content_type,
                             "Content-Length": str(len(body))})
    return Request(method, target, headers, iter([body[:sent]] if sent else []), "http://127.0.0.1:1")


def _spooled(app: DriveSandbox) -> list[Any]:
    return list((app.store.dir / "spool").iterdir())


@pytest.mark.parametrize("sent", [0, 40, len(MULTIPART) // 2, len(MULTIPART) - 2],
                         ids=["no-body", "in-metadata", "in-media", "after-closing-boundary"])
def test_a_multipart_upload_cut_short_creates_nothing(app: DriveSandbox, sent: int) -> None:
    request = _request(app, "POST", "/upload/drive/v3/files?uploadType=multipart", MULTIPART, sent, MULTIPART_TYPE)
    with pytest.raises(DropConnection):
        app.handle(request)
    assert app.store.files == {} and _spooled(app) == []


def test_a_whole_multipart_upload_still_creates_the_file(app: DriveSandbox) -> None:
    request = _request(app, "POST", "/upload/drive/v3/files?uploadType=multipart", MULTIPART, len(MULTIPART),
                       MULTIPART_TYPE)
    assert app.handle(request).status == 200
    [file] = app.store.files.values()
    assert file.name == "INV-1.pdf" and file.size == len(b"%PDF-1.7 invoice")


@pytest.mark.parametrize("sent", [0, 10])
def test_a_metadata_create_cut_short_makes_no_untitled_file(app: DriveSandbox, sent: int) -> None:
    body = json.dumps({"name": "2026", "mimeType": "application/vnd.google-apps.folder", "parents": ["root"]})
    with pytest.raises(DropConnection):
        app.handle(_request(app, "POST", "/drive/v3/files", body.encode(), sent, "application/json"))
    assert app.store.files == {}


def test_simple_upload_and_resumable_start_cut_short_leave_nothing(app: DriveSandbox) -> None:
    with pytest.raises(DropConnection):
        app.handle(_request(app, "POST", "/upload/drive/v3/files?uploadType=media", b"%PDF-1.7", 4,
                            "application/pdf"))
    with pytest.raises(DropConnection):
        app.handle(_request(app, "POST", "/upload/drive/v3/files?uploadType=resumable",
                            json.dumps(METADATA).encode(), 0, "application/json"))
    assert app.store.files == {} and app.uploads.sessions == {} and _spooled(app) == []


def test_over_the_wire_a_cut_multipart_gets_no_answer_and_no_file(app: DriveSandbox,
                                                                  serve_sandbox: Callable[..., Any]) -> None:
    where = urlsplit(serve_sandbox(app).url)
    token = app.oauth.issue("user")["access_token"]
    head = (f"POST /upload/drive/v3/files?uploadType=multipart HTTP/1.1\r\nHost: {where.netloc}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: {MULTIPART_TYPE}\r\n"
            f"Content-Length: {len(MULTIPART)}\r\n\r\n").encode()
    with socket.create_connection((where.hostname, where.port), timeout=10) as conn:
        conn.sendall(head + MULTIPART[: len(MULTIPART) // 2])
        conn.shutdown(socket.SHUT_WR)  # the client is gone: the rest of the body never comes
        answer = conn.recv(65536)  # b"" once the sandbox has dropped the connection
    assert answer == b"" and app.store.files == {}
