"""Proof of protocol: the official ``dropbox`` SDK talks to the sandbox and understands it.

If the sandbox drifted from the real wire format (argument header, union shapes, content types,
``content_hash``), the SDK's own serializers would refuse its answers here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

dropbox = pytest.importorskip("dropbox")

pytestmark = pytest.mark.sdk


@pytest.fixture
def dbx(env: Any) -> Iterator[Any]:
    base = env.url

    class LocalDropbox(dropbox.Dropbox):  # type: ignore[misc]
        # The SDK hard-codes https://{host}/2/{route}; send it to the plain-HTTP sandbox instead.
        def _get_route_url(self, hostname: str, route_name: str) -> str:
            return f"{base}/2/{route_name}"

    token = json.loads(env.app.account_secrets()["oauth_token"])["access_token"]
    client = LocalDropbox(oauth2_access_token=token, max_retries_on_rate_limit=0, max_retries_on_error=0)
    yield client
    client.close()


def test_sdk_upload_and_get_metadata(dbx: Any) -> None:
    data = b"%PDF sdk \xe9t\xe9"
    meta = dbx.files_upload(data, "/Invoices/Facture-été.pdf", mode=dropbox.files.WriteMode.add, mute=True)
    assert isinstance(meta, dropbox.files.FileMetadata)
    assert meta.path_display == "/Invoices/Facture-été.pdf" and meta.size == len(data)
    from dropbox.content_hash import DropboxContentHasher

    hasher = DropboxContentHasher()  # the SDK's own content_hash
    hasher.update(data)
    assert meta.content_hash == hasher.hexdigest()
    found = dbx.files_get_metadata("/INVOICES/facture-ÉTÉ.PDF")  # case-insensitive lookup
    assert isinstance(found, dropbox.files.FileMetadata) and found.id == meta.id and found.rev == meta.rev
    folder = dbx.files_get_metadata("/invoices")
    assert isinstance(folder, dropbox.files.FolderMetadata) and folder.path_display == "/Invoices"


def test_sdk_upload_session_with_offset_error(dbx: Any) -> None:
    start = dbx.files_upload_session_start(b"a" * 1000)
    cursor = dropbox.files.UploadSessionCursor(session_id=start.session_id, offset=1000)
    dbx.files_upload_session_append_v2(b"b" * 500, cursor)
    with pytest.raises(dropbox.exceptions.ApiError) as caught:
        dbx.files_upload_session_append_v2(b"c", dropbox.files.UploadSessionCursor(start.session_id, 1000))
    error = caught.value.error
    assert error.is_incorrect_offset() and error.get_incorrect_offset().correct_offset == 1500
    commit = dropbox.files.CommitInfo(path="/big/session.bin", mode=dropbox.files.WriteMode.overwrite)
    meta = dbx.files_upload_session_finish(b"z", dropbox.files.UploadSessionCursor(start.session_id, 1500), commit)
    assert meta.size == 1501


def test_sdk_finish_batch_v2(dbx: Any) -> None:
    entries = []
    for i in range(3):
        start = dbx.files_upload_session_start(f"file {i}".encode(), close=True)
        entries.append(dropbox.files.UploadSessionFinishArg(
            cursor=dropbox.files.UploadSessionCursor(start.session_id, len(f"file {i}")),
            commit=dropbox.files.CommitInfo(path=f"/batch/{i}.txt")))
    result = dbx.files_upload_session_finish_batch_v2(entries)
    assert [r.is_success() for r in result.entries] == [True, True, True]
    assert result.entries[1].get_success().path_display == "/batch/1.txt"


def test_sdk_parses_route_errors_into_its_unions(dbx: Any) -> None:
    with pytest.raises(dropbox.exceptions.ApiError) as missing:
        dbx.files_get_metadata("/no/such/file.pdf")
    assert missing.value.error.is_path() and missing.value.error.get_path().is_not_found()
    dbx.files_upload(b"one", "/taken.pdf")
    with pytest.raises(dropbox.exceptions.ApiError) as taken:
        dbx.files_upload(b"two", "/taken.pdf")
    reason = taken.value.error.get_path().reason
    assert reason.is_conflict() and reason.get_conflict().is_file()


def test_sdk_sees_content_hash_mismatch(dbx: Any) -> None:
    with pytest.raises(dropbox.exceptions.ApiError) as caught:
        dbx.files_upload(b"actual bytes", "/h.bin", content_hash="0" * 64)
    assert caught.value.error.is_content_hash_mismatch()


def test_sdk_reads_auth_and_rate_limit_errors(env: Any, dbx: Any) -> None:
    env.app.oauth.expire_access_tokens()
    with pytest.raises(dropbox.exceptions.AuthError) as expired:
        dbx.files_get_metadata("/x")
    assert expired.value.error.is_expired_access_token()
    fresh = json.loads(env.app.account_secrets()["oauth_token"])["access_token"]
    dbx._oauth2_access_token = fresh
    env.app.add_fault("status:status=429,code=too_many_write_operations,path=/2/files/upload$")
    with pytest.raises(dropbox.exceptions.RateLimitError) as limited:
        dbx.files_upload(b"x", "/r.bin")
    assert limited.value.error.reason.is_too_many_write_operations() and limited.value.backoff == 0


def _redirecting_session(base: str) -> Any:
    """A requests session that sends the SDK's https://api|content.dropboxapi.com calls to the sandbox."""
    import requests

    class Redirect(requests.adapters.HTTPAdapter):
        def send(self, request: Any, **kwargs: Any) -> Any:
            for host in ("https://api.dropboxapi.com", "https://content.dropboxapi.com"):
                request.url = request.url.replace(host, base)
            return super().send(request, **kwargs)

    session = requests.Session()
    for host in ("https://api.dropboxapi.com", "https://content.dropboxapi.com"):
        session.mount(host, Redirect())
    return session


def test_sdk_pkce_login_and_refresh_against_the_sandbox_oauth(env: Any) -> None:
    """The SDK's own PKCE flow (public client, no secret) and its refresh: the sandbox's token
    endpoint reads the same form fields our client sends, and answers what the SDK expects."""
    import urllib.parse

    import httpx

    flow = dropbox.DropboxOAuth2FlowNoRedirect(env.app.oauth.app_key, use_pkce=True,
                                               token_access_type="offline")
    flow.requests_session = _redirecting_session(env.url)
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(flow.start()).query))
    assert query["code_challenge_method"] == "S256" and query["token_access_type"] == "offline"
    shown = httpx.get(f"{env.url}/oauth2/authorize", params=query)  # no redirect_uri: the code is shown
    code = shown.text.rsplit(":", 1)[-1].strip()
    result = flow.finish(code)
    assert result.access_token.startswith("sl.") and result.refresh_token
    with dropbox.Dropbox(oauth2_refresh_token=result.refresh_token, app_key=env.app.oauth.app_key,
                         session=_redirecting_session(env.url), max_retries_on_rate_limit=0) as client:
        client.refresh_access_token()
        assert env.app.oauth.refreshes == 1
        client.files_upload(b"via sdk", "/sdk/refreshed.txt")
        assert client.files_get_metadata("/SDK/refreshed.txt").size == 7
