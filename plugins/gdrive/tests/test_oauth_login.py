"""Google logins as strictly as Google: a Desktop client's loopback redirect on any port, other
redirect URIs only if registered, codes once within 10 minutes, the client secret kept however it
was given, a working login kept unless --relogin, and a dead login naming the relogin command."""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

import httpx
import pytest
from invoicesync import AuthError, DeliveryStatus, NonInteractiveUI
from invoicesync.testing import ScriptedUI
from invoicesync_gdrive import plugin as gdrive_plugin
from invoicesync_gdrive.sandbox import DriveSandbox
from invoicesync_gdrive.sandbox.oauth import CLIENT_ID, CLIENT_SECRET

RELOGIN = "invoicesync connect gdrive --name drive --relogin"


def _browser(url: str) -> None:
    httpx.get(url, follow_redirects=True, timeout=10).raise_for_status()


def _authorize(drive: Any, redirect_uri: str) -> httpx.Response:
    return httpx.get(f"{drive.url}/o/oauth2/v2/auth", params={
        "client_id": CLIENT_ID, "redirect_uri": redirect_uri, "response_type": "code", "state": "s",
        "scope": "https://www.googleapis.com/auth/drive.file"})


def test_a_desktop_client_takes_loopback_on_any_port_and_nothing_unregistered(drive: Any) -> None:
    assert _authorize(drive, "http://127.0.0.1:40123/").status_code == 302
    refused = _authorize(drive, "https://books.example.com/callback")
    assert refused.status_code == 400 and "redirect_uri_mismatch" in refused.text
    registered = DriveSandbox({"redirect_uris": "https://books.example.com/callback"})
    assert registered.oauth.redirects.problem("https://books.example.com/callback") is None
    assert registered.oauth.redirects.problem("https://books.example.com/other") is not None
    assert DriveSandbox({"lenient_redirects": "yes"}).oauth.redirects.problem("https://any.example/") is None


def test_codes_work_once_and_for_ten_minutes(drive: Any) -> None:
    def code() -> str:
        location = _authorize(drive, "http://127.0.0.1:40123/").headers["Location"]
        return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))["code"]

    def exchange(value: str) -> httpx.Response:
        return httpx.post(f"{drive.url}/token", data={
            "grant_type": "authorization_code", "code": value, "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET, "redirect_uri": "http://127.0.0.1:40123/"})

    first = code()
    assert exchange(first).status_code == 200
    assert exchange(first).json()["error"] == "invalid_grant"
    late = code()
    clock = drive.app.oauth.codes.clock
    drive.app.oauth.codes.clock = lambda: clock() + 601
    assert exchange(late).json()["error"] == "invalid_grant"


def test_a_working_login_is_kept_and_relogin_runs_the_consent_again(drive: Any) -> None:
    kept = ScriptedUI(browser=_browser)
    gdrive_plugin.auth(account=drive.account, ctx=drive.context(ui=kept))
    assert kept.opened == [] and any("stored Google login" in line for line in kept.output)
    again = ScriptedUI(browser=_browser)
    gdrive_plugin.auth(account=drive.account, ctx=drive.context(ui=again, options={"relogin": True}))
    assert len(again.opened) == 1


def _revoke(drive: Any) -> None:
    with drive.app.oauth.lock:
        drive.app.oauth.refresh_tokens.clear()
    drive.app.oauth.expire_all()


def test_a_revoked_login_names_the_relogin_command(drive: Any) -> None:
    _revoke(drive)
    with pytest.raises(AuthError, match=re.escape(RELOGIN)):
        gdrive_plugin.auth(account=drive.account, ctx=drive.context(ui=NonInteractiveUI()))
    with pytest.raises(AuthError, match=re.escape(RELOGIN)):
        drive.push([drive.document(1)])


def test_a_client_secret_given_in_the_environment_is_kept_for_later_refreshes(
        drive: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = drive.workspace.secrets(drive.account.name)
    secrets.delete("oauth_token")
    secrets.delete("client_secret")
    monkeypatch.setenv("INVOICESYNC_DRIVE_CLIENT_SECRET", CLIENT_SECRET)
    gdrive_plugin.auth(account=drive.account, ctx=drive.context(ui=ScriptedUI(browser=_browser)))
    monkeypatch.delenv("INVOICESYNC_DRIVE_CLIENT_SECRET")  # a later sync, e.g. from systemd
    drive.app.oauth.expire_all()
    [delivery] = drive.push([drive.document(2)])
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message


def test_a_login_google_refuses_even_after_a_refresh_names_the_relogin_command(drive: Any) -> None:
    drive.app.add_fault({"status": 401, "path": r"^/drive/v3/files", "times": None})
    with pytest.raises(AuthError, match=re.escape(RELOGIN)):
        drive.push([drive.document(3)])
