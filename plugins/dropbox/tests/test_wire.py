"""What the client puts on the wire, request by request, checked against the documented form.

The other suites prove the client and the sandbox agree; these pin the client's side on its own:
which host each route goes to, the exact headers, the ``Dropbox-API-Arg`` JSON (ASCII-only, with
``\\u`` escapes), no JSON body on content routes, and every argument decoded by the official
SDK's strict Stone validators (unknown fields, wrong types or a bad union are refused there).
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from typing import Any

import pytest
from invoicesync import DeliveryStatus
from invoicesync.sandbox import Request, Response
from invoicesync.testing import ScriptedUI
from invoicesync_dropbox.content_hash import content_hash
from invoicesync_dropbox.sandbox import DropboxSandbox

CONTENT_ROUTES = {"files/upload", "files/upload_session/start", "files/upload_session/append_v2",
                  "files/upload_session/finish"}


@dataclass
class Seen:
    method: str
    path: str
    base_url: str
    headers: dict[str, str]
    body: bytes

    @property
    def route(self) -> str:
        return self.path.removeprefix("/2/")

    @property
    def raw_arg(self) -> str:
        return self.headers["dropbox-api-arg"]


class RecordingSandbox(DropboxSandbox):
    """The sandbox, keeping every request as it arrived (fine for the small bodies used here)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seen: list[Seen] = []

    def handle(self, request: Request) -> Response:
        body = request.body  # cached: the route still reads it through iter_body()
        self.seen.append(Seen(request.method, request.path, request.base_url,
                              {k.lower(): v for k, v in request.headers.multi_items()}, body))
        return super().handle(request)

    def routes(self, route: str) -> list[Seen]:
        return [s for s in self.seen if s.route == route]


@pytest.fixture
def wire(make_env: Any, serve_sandbox: Any) -> Any:
    """An env whose RPC host and content host are two different ports of one recording sandbox."""
    env = make_env()
    app = RecordingSandbox(retry_after=0)
    api = serve_sandbox(app)
    content = serve_sandbox(app)
    env.app, env.server = app, api
    env.account = env.account.model_copy(update={"settings": {**app.account_settings(api.url),
                                                              "content_url": content.url}})
    for key, value in app.account_secrets().items():
        env.workspace.secrets(env.account.name).set(key, value)
    env.api_url, env.content_url = api.url, content.url
    return env


def _sdk() -> Any:
    files = pytest.importorskip("dropbox.files")
    serializers = pytest.importorskip("stone.backends.python_rsrc.stone_serializers")
    return files, serializers


def _sdk_decode(validator_name: str, raw: str | bytes) -> Any:
    files, serializers = _sdk()
    text = raw.decode() if isinstance(raw, bytes) else raw
    return serializers.json_decode(getattr(files, validator_name), text, strict=True)


def _check_host_and_headers(env: Any, seen: Seen) -> None:
    assert seen.method == "POST"
    assert seen.headers["authorization"].startswith("Bearer sl.")
    if seen.route in CONTENT_ROUTES:
        assert seen.base_url == env.content_url, f"{seen.route} must go to the content host"
        assert seen.headers["content-type"] == "application/octet-stream"
        raw = seen.raw_arg
        assert raw.isascii() and "\x7f" not in raw, "Dropbox-API-Arg must be HTTP-header-safe"
        # A known length, no chunked encoding, and the body is the file bytes, not JSON.
        assert int(seen.headers["content-length"]) == len(seen.body)
        assert "transfer-encoding" not in seen.headers
    else:
        assert seen.base_url == env.api_url, f"{seen.route} must go to the RPC host"
        assert seen.headers["content-type"] == "application/json"
        assert "dropbox-api-arg" not in seen.headers
        json.loads(seen.body)


def test_files_upload_on_the_wire(wire: Any) -> None:
    wire.configure(batch_commit=False)
    pdf = b"%PDF wire \xe9t\xe9"
    document = wire.document("W-1", pdf=pdf, counterparty="Société Générale ☃ 😀")
    [delivery] = wire.push([document])
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    for seen in wire.app.seen:
        _check_host_and_headers(wire, seen)
    [upload] = wire.app.routes("files/upload")
    assert upload.body == pdf
    assert "\\u00e9" in upload.raw_arg and "\\ud83d\\ude00" in upload.raw_arg  # escaped, not raw UTF-8
    arg = json.loads(upload.raw_arg)
    assert arg == {"path": delivery.target_path, "mode": {".tag": "add"}, "autorename": False, "mute": True,
                   "strict_conflict": False, "content_hash": content_hash(pdf)}
    decoded = _sdk_decode("UploadArg_validator", upload.raw_arg)
    assert decoded.mode.is_add() and decoded.content_hash == content_hash(pdf)
    # The look before the write is one listing of the template's fixed root, not a get_metadata.
    assert wire.app.routes("files/get_metadata") == []
    [listing] = wire.app.routes("files/list_folder")
    assert json.loads(listing.body) == {"path": "/Invoices", "recursive": True, "include_deleted": False,
                                        "limit": 2000}
    decoded_listing = _sdk_decode("ListFolderArg_validator", listing.body)
    assert decoded_listing.recursive and decoded_listing.limit == 2000


def test_get_metadata_after_an_unknown_outcome_on_the_wire(wire: Any) -> None:
    """Where the index cannot answer (the write's outcome is unknown) the path is looked up itself."""
    wire.configure(batch_commit=False)
    wire.app.add_fault({"status": 503, "path": r"/2/files/upload$", "times": 1})
    [delivery] = wire.push([wire.document("W-3", pdf=b"%PDF unknown")])
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    [lookup] = wire.app.routes("files/get_metadata")
    assert json.loads(lookup.body) == {"path": delivery.target_path}
    _sdk_decode("GetMetadataArg_validator", lookup.body)


def test_update_mode_names_the_revision_on_the_wire(wire: Any) -> None:
    wire.configure(batch_commit=False, on_change="overwrite")
    document = wire.document("W-2", pdf=b"%PDF v1")
    [first] = wire.push([document])
    changed = document.model_copy(update={"files": wire.document("W-2", pdf=b"%PDF v2").files})
    from invoicesync import PushRequest

    [second] = wire.push([PushRequest(document=changed, previous=first)])
    assert second.status is DeliveryStatus.DELIVERED, second.message
    update = wire.app.routes("files/upload")[-1]
    decoded = _sdk_decode("UploadArg_validator", update.raw_arg)
    assert decoded.mode.is_update() and decoded.mode.get_update() == first.extra["rev"]
    assert json.loads(update.raw_arg)["mode"] == {".tag": "update", "update": first.extra["rev"]}


def test_batched_sessions_on_the_wire(wire: Any) -> None:
    pdfs = [b"%PDF batch one", b"%PDF batch two", b""]
    deliveries = wire.push([wire.document(f"W-B{i}", pdf=p) for i, p in enumerate(pdfs)])
    assert [d.status for d in deliveries] == [DeliveryStatus.DELIVERED] * 3, [d.message for d in deliveries]
    for seen in wire.app.seen:
        _check_host_and_headers(wire, seen)
    # The sessions start side by side, so they arrive in any order.
    starts = sorted(wire.app.routes("files/upload_session/start"), key=lambda s: s.body)
    assert [s.body for s in starts] == sorted(pdfs)
    for start, pdf in zip(starts, sorted(pdfs), strict=True):
        decoded = _sdk_decode("UploadSessionStartArg_validator", start.raw_arg)
        assert decoded.close is True
        # Each call's hash covers that call's bytes; an empty body carries none.
        assert json.loads(start.raw_arg) == ({"close": True, "content_hash": content_hash(pdf)} if pdf
                                             else {"close": True})
    [batch] = wire.app.routes("files/upload_session/finish_batch_v2")
    decoded = _sdk_decode("UploadSessionFinishBatchArg_validator", batch.body)
    # Entries go in the order the sessions closed: match them to the documents by path.
    offsets = {e.commit.path: e.cursor.offset for e in decoded.entries}
    assert offsets == {d.target_path: len(p) for d, p in zip(deliveries, pdfs, strict=True)}
    assert all(e.commit.mode.is_add() and e.commit.mute and not e.commit.autorename for e in decoded.entries)


def test_chunked_session_on_the_wire(wire: Any) -> None:
    mib = 4 * 1024 * 1024
    wire.configure(upload_threshold=mib, chunk_size=mib)
    data = bytes(range(256)) * ((2 * mib + 1000) // 256)
    [delivery] = wire.push([wire.document("W-L", pdf=data)])
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    for seen in wire.app.seen:
        _check_host_and_headers(wire, seen)
    [start] = wire.app.routes("files/upload_session/start")
    assert json.loads(start.raw_arg) == {"close": False, "content_hash": content_hash(data[:mib])}
    _sdk_decode("UploadSessionStartArg_validator", start.raw_arg)
    appends = wire.app.routes("files/upload_session/append_v2")
    offsets = [json.loads(a.raw_arg)["cursor"]["offset"] for a in appends]
    assert offsets == [mib, 2 * mib]
    for append in appends:
        decoded = _sdk_decode("UploadSessionAppendArg_validator", append.raw_arg)
        assert decoded.content_hash == content_hash(append.body) and decoded.close is False
    [finish] = wire.app.routes("files/upload_session/finish")
    arg = json.loads(finish.raw_arg)
    assert finish.body == b"" and "content_hash" not in arg
    assert arg["cursor"] == {"session_id": json.loads(appends[0].raw_arg)["cursor"]["session_id"],
                             "offset": len(data)}
    decoded = _sdk_decode("UploadSessionFinishArg_validator", finish.raw_arg)
    assert decoded.commit.path == delivery.target_path and decoded.commit.mode.is_add()


def _browser(url: str) -> None:
    import httpx

    assert httpx.get(url, follow_redirects=True, timeout=10).status_code == 200


def test_oauth_on_the_wire_is_a_public_pkce_client(wire: Any) -> None:
    wire.workspace.secrets(wire.account.name).delete("oauth_token")
    ui = ScriptedUI(browser=_browser)
    ctx = wire.context(ui=ui)
    try:
        wire.workspace.plugins.call("dropbox", "auth", account=wire.account, ctx=ctx)
    finally:
        ctx.close()
    [url] = ui.opened
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    assert set(query) == {"client_id", "response_type", "redirect_uri", "state", "token_access_type", "scope",
                          "code_challenge", "code_challenge_method"}
    assert query["response_type"] == "code" and query["code_challenge_method"] == "S256"
    assert query["token_access_type"] == "offline"
    [exchange] = wire.app.routes("/oauth2/token")
    assert exchange.base_url == wire.api_url  # the token endpoint lives on the API host
    assert exchange.headers["content-type"] == "application/x-www-form-urlencoded"
    assert "authorization" not in exchange.headers  # no Basic auth: there is no app secret
    form = dict(urllib.parse.parse_qsl(exchange.body.decode()))
    assert set(form) == {"grant_type", "code", "redirect_uri", "code_verifier", "client_id"}
    assert form["grant_type"] == "authorization_code" and form["redirect_uri"] == query["redirect_uri"]
    assert 43 <= len(form["code_verifier"]) <= 128

    wire.app.oauth.expire_access_tokens()
    [delivery] = wire.push([wire.document("W-R", pdf=b"%PDF refresh")])
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    refresh = wire.app.routes("/oauth2/token")[-1]
    form = dict(urllib.parse.parse_qsl(refresh.body.decode()))
    assert set(form) == {"grant_type", "refresh_token", "client_id"}
    assert form["grant_type"] == "refresh_token" and form["client_id"] == query["client_id"]
    assert "authorization" not in refresh.headers
