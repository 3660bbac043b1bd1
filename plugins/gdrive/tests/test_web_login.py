"""The dashboard's two-request login (auth_begin, then auth_complete) against the Drive sandbox's
OAuth server: a registered web callback, PKCE, offline access; a service account needs no page."""

from __future__ import annotations

import urllib.parse
from typing import Any

import httpx
from invoicesync import AuthStart
from invoicesync.testing import ScriptedUI
from invoicesync_gdrive import plugin as gdrive_plugin

from .conftest import stored_token

CALLBACK = "https://dashboard.example/oauth/callback"


def test_begin_then_complete_logs_in_and_finds_the_root_folder(drive: Any) -> None:
    drive.app.oauth.redirects.register(CALLBACK)
    drive.workspace.secrets(drive.account.name).delete("oauth_token")
    ctx = drive.context(ui=ScriptedUI())
    started = gdrive_plugin.auth_begin(account=drive.account, ctx=ctx, redirect_uri=CALLBACK)
    assert isinstance(started, AuthStart) and started.verifier
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(started.url).query))
    assert query["redirect_uri"] == CALLBACK and query["access_type"] == "offline"
    assert query["code_challenge_method"] == "S256" and query["state"] == started.state
    answer = httpx.get(started.url, follow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    ui = ScriptedUI()
    ctx = drive.context(ui=ui)
    assert gdrive_plugin.auth_complete(account=drive.account, ctx=ctx, callback_url=answer.headers["Location"],
                                       started=started) == []
    assert stored_token(drive)["refresh_token"]
    assert any("Drive folder" in line for line in ui.output)  # the new login found (or made) the root


def test_a_service_account_has_no_login_page(drive: Any) -> None:
    mode = {"auth_mode": "service_account", "shared_drive_id": "0AShared"}
    account = drive.account.model_copy(update={"settings": {**drive.account.settings, **mode}})
    ctx = drive.context(ui=ScriptedUI())
    ctx.settings = ctx.settings.model_copy(update=mode)
    assert gdrive_plugin.auth_begin(account=account, ctx=ctx, redirect_uri=CALLBACK) is None
