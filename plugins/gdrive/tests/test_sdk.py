"""Proof of protocol: Google's own client (google-api-python-client) against the sandbox.

If the official client can create, upload resumably and search here, the sandbox speaks Drive's
wire format (multipart with bare LF, session URIs, 308 + Range, appProperties queries) and not
merely a dialect our own client happens to share.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("googleapiclient")

from google.oauth2.credentials import Credentials
from google_auth_httplib2 import AuthorizedHttp
from googleapiclient.discovery import build_from_document
from googleapiclient.http import MediaInMemoryUpload, MediaIoBaseUpload, build_http
from invoicesync_gdrive.sandbox import CLIENT_ID, CLIENT_SECRET
from invoicesync_gdrive.sandbox.store import FOLDER_MIME

pytestmark = pytest.mark.sdk
DISCOVERY = Path(__file__).with_name("drive.v3.json")


@pytest.fixture
def service(drive: Any) -> Any:
    doc = json.loads(DISCOVERY.read_text())
    doc["rootUrl"] = drive.url + "/"  # API and upload URLs both derive from it
    token = drive.app.oauth.issue("user")
    credentials = Credentials(token=token["access_token"], refresh_token=token["refresh_token"],
                              token_uri=f"{drive.url}/token", client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    # build_http() stops httplib2 from following Drive's 308 "Resume Incomplete" as a redirect.
    return build_from_document(doc, http=AuthorizedHttp(credentials, http=build_http()))


def test_official_client_multipart_create(service: Any, drive: Any) -> None:
    folder = service.files().create(body={"name": "Invoices", "mimeType": FOLDER_MIME},
                                    fields="id,mimeType").execute()
    created = service.files().create(
        body={"name": "INV-001.pdf", "parents": [folder["id"]], "appProperties": {"invoiceId": "INV-001"}},
        media_body=MediaInMemoryUpload(b"%PDF-1.4 official\n", mimetype="application/pdf"),
        fields="id,name,md5Checksum,size,parents,appProperties", supportsAllDrives=True,
    ).execute()
    assert created["size"] == "18" and created["parents"] == [folder["id"]]
    assert created["appProperties"] == {"invoiceId": "INV-001"}
    assert set(created) == {"id", "name", "md5Checksum", "size", "parents", "appProperties"}  # fields honoured
    stored = drive.app.store.files[created["id"]]
    assert stored.md5 == created["md5Checksum"] and stored.size == 18
    with open(drive.app.store.content_path(created["id"]), "rb") as handle:
        assert handle.read() == b"%PDF-1.4 official\n"  # bare-LF multipart parsed to the exact bytes


def test_official_client_chunked_resumable_upload(service: Any, drive: Any) -> None:
    data = bytes(range(256)) * 4096 + b"tail"  # 1 MiB + 4 bytes: four full chunks and a short one
    media = MediaIoBaseUpload(io.BytesIO(data), mimetype="application/pdf", chunksize=256 * 1024, resumable=True)
    request = service.files().create(body={"name": "big.pdf"}, media_body=media, fields="id,size,md5Checksum")
    response, chunks = None, 0
    while response is None:
        _status, response = request.next_chunk()
        chunks += 1
    assert chunks == 5 and response["size"] == str(len(data))
    assert drive.app.count("PUT", r"^/upload/drive/v3/files$") == 5
    import hashlib

    assert response["md5Checksum"] == hashlib.md5(data).hexdigest()


def test_official_client_lists_by_app_property(service: Any, drive: Any) -> None:
    for n in range(5):
        service.files().create(body={"name": f"doc {n}.pdf", "appProperties": {"invoiceId": f"ID-{n % 2}"}},
                               media_body=MediaInMemoryUpload(b"x", mimetype="application/pdf")).execute()
    query = "appProperties has { key='invoiceId' and value='ID-1' } and trashed = false"
    names, token = [], None
    while True:
        page = service.files().list(q=query, pageSize=1, pageToken=token,
                                    fields="nextPageToken,files(name,appProperties)").execute()
        names += [f["name"] for f in page["files"]]
        token = page.get("nextPageToken")
        if not token:
            break
    assert sorted(names) == ["doc 1.pdf", "doc 3.pdf"]


def test_official_client_sees_drive_errors(service: Any) -> None:
    from googleapiclient.errors import HttpError

    with pytest.raises(HttpError) as raised:
        service.files().get(fileId="no-such-file").execute()
    assert raised.value.status_code == 404 and raised.value.reason == "File not found: no-such-file."


def test_official_client_follows_the_changes_feed(service: Any, drive: Any) -> None:
    token = service.changes().getStartPageToken().execute()["startPageToken"]
    created = [service.files().create(body={"name": f"new {n}.pdf"}, fields="id").execute()["id"] for n in range(3)]
    service.files().update(fileId=created[0], body={"trashed": True}).execute()
    seen: dict[str, Any] = {}
    while True:
        page = service.changes().list(pageToken=token, pageSize=2, spaces="drive", includeRemoved=True,
                                      fields="nextPageToken,newStartPageToken,changes(fileId,removed,file(trashed))"
                                      ).execute()
        seen.update({c["fileId"]: c["file"]["trashed"] for c in page["changes"]})
        if "newStartPageToken" in page:
            break
        token = page["nextPageToken"]
    assert seen == {created[1]: False, created[2]: False, created[0]: True}
    assert service.changes().list(pageToken=page["newStartPageToken"]).execute()["changes"] == []
