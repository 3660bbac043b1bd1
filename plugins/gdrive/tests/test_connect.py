"""Connecting: user consent through the browser step (or a pasted URL), service accounts, refresh."""

from __future__ import annotations

import json
import re
import urllib.parse
from typing import Any

import httpx
import pytest
from invoicesync import ConfigError, DeliveryStatus
from invoicesync.testing import ScriptedUI
from invoicesync_gdrive import plugin as gdrive_plugin
from invoicesync_gdrive.sandbox import SHARED_DRIVE_ID
from invoicesync_gdrive.sandbox.store import MY_DRIVE_ROOT


def _browser(url: str) -> None:
    """A browser that consents at once: follows Google's redirect back to the loopback receiver."""
    httpx.get(url, follow_redirects=True, timeout=10).raise_for_status()


def _forget_login(drive: Any) -> None:
    secrets = drive.workspace.secrets(drive.account.name)
    secrets.delete("oauth_token")


def test_user_login_through_the_browser(drive: Any) -> None:
    _forget_login(drive)
    ui = ScriptedUI(browser=_browser)
    ctx = drive.context(ui=ui)
    assert gdrive_plugin.auth(account=drive.account, ctx=ctx) == []
    [url] = ui.opened
    params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    assert params["access_type"] == "offline" and params["prompt"] == "consent"
    assert params["code_challenge_method"] == "S256" and len(params["code_challenge"]) == 43
    assert params["scope"] == "https://www.googleapis.com/auth/drive.file"
    token = json.loads(drive.workspace.secrets(drive.account.name).get("oauth_token"))
    assert token["refresh_token"].startswith("1//") and token["access_token"]
    root = drive.app.find_path("invoicesync")
    assert root is not None and root.parents == [MY_DRIVE_ROOT]
    assert drive.workspace.state.kv(drive.account.name).get("root_id") == root.id


def test_user_login_without_a_browser_takes_the_pasted_url(drive: Any) -> None:
    _forget_login(drive)

    class PastingUI(ScriptedUI):
        def prompt(self, text: str, *, secret: bool = False, default: str | None = None) -> str:
            if "Paste" not in text:
                return super().prompt(text, secret=secret, default=default)
            url = re.search(r"(http\S+)", self.output[-1]).group(1)  # type: ignore[union-attr]
            return httpx.get(url, follow_redirects=False).headers["Location"]  # where the browser went

    ctx = drive.context(ui=PastingUI(), options={"no_browser": True})
    gdrive_plugin.auth(account=drive.account, ctx=ctx)
    assert json.loads(drive.workspace.secrets(drive.account.name).get("oauth_token"))["refresh_token"]


def test_expired_access_token_is_refreshed(drive: Any) -> None:
    drive.app.oauth.expire_all()  # every call now answers 401 until a refresh
    [delivery] = drive.push([drive.document(1)])
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert drive.app.oauth.refreshes == 1


def test_service_account_writes_into_the_shared_drive(drive: Any) -> None:
    _forget_login(drive)
    drive.workspace.secrets(drive.account.name).set("service_account_key",
                                                    json.dumps(drive.app.service_account_key(drive.url)))
    drive.configure(auth_mode="service_account", shared_drive_id=SHARED_DRIVE_ID)
    gdrive_plugin.auth(account=drive.account, ctx=drive.context())
    [delivery] = drive.push([drive.document(1)])
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    root = drive.app.find_path("invoicesync", start=SHARED_DRIVE_ID)
    pdf = drive.app.find_path(delivery.target_path, start=root.id)
    assert pdf is not None and pdf.drive_id == SHARED_DRIVE_ID


def test_service_account_key_file_setting(drive: Any, tmp_path: Any) -> None:
    key = tmp_path / "key.json"
    key.write_text(json.dumps(drive.app.service_account_key(drive.url)))
    drive.configure(auth_mode="service_account", shared_drive_id=SHARED_DRIVE_ID, service_account_key_file=str(key))
    gdrive_plugin.auth(account=drive.account, ctx=drive.context())
    assert drive.app.find_path("invoicesync", start=SHARED_DRIVE_ID) is not None


def test_service_account_without_a_shared_drive_is_refused_clearly(drive: Any) -> None:
    drive.configure(auth_mode="service_account")
    with pytest.raises(ConfigError, match="shared_drive_id") as raised:
        gdrive_plugin.auth(account=drive.account, ctx=drive.context())
    assert "no Drive storage quota" in str(raised.value)


def test_sandbox_refuses_service_account_writes_outside_a_shared_drive(drive: Any) -> None:
    """The sandbox behaves as Google does, so the explanation in our error is tested end to end."""
    token = drive.app.oauth.issue("service_account")["access_token"]
    answer = httpx.post(f"{drive.url}/drive/v3/files", json={"name": "x", "parents": ["root"]},
                        headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 403
    assert answer.json()["error"]["errors"][0]["reason"] == "storageQuotaExceeded"


def test_bad_service_account_key_is_a_config_error(drive: Any) -> None:
    drive.workspace.secrets(drive.account.name).set("service_account_key", json.dumps({"type": "authorized_user"}))
    drive.configure(auth_mode="service_account", shared_drive_id=SHARED_DRIVE_ID)
    with pytest.raises(ConfigError, match="not a service-account key"):
        gdrive_plugin.auth(account=drive.account, ctx=drive.context())
