"""Dropbox's OAuth as strictly as Dropbox: registered redirect URIs matched exactly, codes once
within 10 minutes, and a dead login naming the relogin command."""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

import httpx
import pytest
from invoicesync import AuthError
from invoicesync.http import DEFAULT_REDIRECT_URI
from invoicesync_dropbox.sandbox import DropboxSandbox

RELOGIN = "invoicesync connect dropbox --name dbx --relogin"


def _authorize(env: Any, redirect_uri: str) -> httpx.Response:
    return httpx.get(f"{env.url}/oauth2/authorize", params={
        "client_id": "sandbox-app-key", "response_type": "code", "redirect_uri": redirect_uri, "state": "s",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256",
        "token_access_type": "offline"})


def test_only_exactly_registered_redirect_uris_get_a_code(env: Any) -> None:
    registered = env.account.settings["redirect_uri"]
    assert _authorize(env, registered).status_code == 302
    port = urllib.parse.urlsplit(registered).port
    for other in (registered.replace(f":{port}", f":{port + 1}"), registered + "/x", "https://example.com/cb"):
        refused = _authorize(env, other)
        assert refused.status_code == 400 and "not registered" in refused.text, other


def test_the_default_registration_and_leniency_by_option() -> None:
    assert DropboxSandbox().oauth.redirects.problem(DEFAULT_REDIRECT_URI) is None
    assert DropboxSandbox().oauth.redirects.problem("http://localhost:9/") is not None
    lenient = DropboxSandbox.from_options({"lenient_redirects": "1"})
    assert lenient.oauth.redirects.problem("http://localhost:9/") is None
    custom = DropboxSandbox.from_options({"redirect_uris": ["https://example.com/dbx"]})
    assert custom.oauth.redirects.problem("https://example.com/dbx") is None


def test_codes_expire_after_ten_minutes(env: Any) -> None:
    redirect = env.account.settings["redirect_uri"]
    location = _authorize(env, redirect).headers["Location"]
    code = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))["code"]
    clock = env.app.oauth.codes.clock
    env.app.oauth.codes.clock = lambda: clock() + 601
    late = httpx.post(f"{env.url}/oauth2/token", data={
        "grant_type": "authorization_code", "code": code, "client_id": "sandbox-app-key",
        "redirect_uri": redirect, "code_verifier": "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"})
    assert late.status_code == 400 and late.json()["error"] == "invalid_grant"


def test_a_revoked_login_names_the_relogin_command(env: Any) -> None:
    env.app.oauth.revoke_all()
    with pytest.raises(AuthError, match=re.escape(RELOGIN)):
        env.push([env.document("R-9", pdf=b"%PDF r9")])


def test_a_login_dropbox_refuses_even_after_a_refresh_names_the_relogin_command(env: Any) -> None:
    env.app.add_fault({"status": 401, "code": "user_suspended", "path": r"/2/files/", "times": None})
    with pytest.raises(AuthError, match=re.escape(RELOGIN)):
        env.push([env.document("S-1", pdf=b"%PDF s1")])
