"""Connecting: the PKCE authorization-code flow against the sandbox's OAuth server, and refresh."""

from __future__ import annotations

import json
import time
import urllib.parse
from typing import Any

import httpx
import pytest
from invoicesync import AuthError, ConfigError, DeliveryStatus
from invoicesync.context import NonInteractiveUI
from invoicesync.http import TokenSet
from invoicesync.testing import ScriptedUI


def _browser(url: str) -> None:
    """The user clicks "Allow": follow the authorize redirect to the loopback callback."""
    response = httpx.get(url, follow_redirects=True, timeout=10)
    assert response.status_code == 200, response.text


def _connect(env: Any, ui: Any, **options: Any) -> list[Any]:
    env.workspace.secrets(env.account.name).delete("oauth_token")
    return _auth(env, ui, **options)


def _auth(env: Any, ui: Any, **options: Any) -> list[Any]:
    """``auth`` over whatever login is stored (the env fixture stores the sandbox's demo token set)."""
    ctx = env.context(ui=ui, options=options)
    try:
        return env.workspace.plugins.call("dropbox", "auth", account=env.account, ctx=ctx)
    finally:
        ctx.close()


def _stored(env: Any) -> TokenSet:
    return TokenSet.model_validate_json(env.workspace.secrets(env.account.name).get("oauth_token"))


def test_connect_runs_pkce_with_offline_access_and_stores_the_refresh_token(env: Any) -> None:
    ui = ScriptedUI(browser=_browser)
    assert _connect(env, ui) == []
    [url] = ui.opened
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    assert query["token_access_type"] == "offline"
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert query["scope"] == "files.content.write files.metadata.read"
    assert query["client_id"] == "sandbox-app-key" and query["response_type"] == "code"
    token = _stored(env)
    assert token.access_token.startswith("sl.") and token.refresh_token
    assert token.expires_at is not None and token.expires_at > time.time() + 3600
    # the new login works for a sync, and no secret was ever shown
    [delivery] = env.push([env.document("C-1", pdf=b"%PDF c")])
    assert delivery.status is DeliveryStatus.DELIVERED
    assert not any(token.refresh_token in line or token.access_token in line for line in ui.output)


class PastingUI(ScriptedUI):
    """--no-browser: the user opens the printed URL elsewhere and pastes where it sent them."""

    def prompt(self, text: str, *, secret: bool = False, default: str | None = None) -> str:
        url = next(line.split()[-1] for line in reversed(self.output) if "http" in line)
        response = httpx.get(url.strip(), follow_redirects=False, timeout=10)
        assert response.status_code == 302
        return response.headers["Location"]


def test_connect_without_a_browser_takes_the_pasted_redirect(env: Any) -> None:
    ui = PastingUI()
    _connect(env, ui, no_browser=True)
    assert ui.opened == []  # --no-browser never opens one
    assert _stored(env).refresh_token


def test_connect_needs_an_app_key(env: Any) -> None:
    env.configure(app_key="")
    with pytest.raises(ConfigError, match="app_key"):
        _connect(env, ScriptedUI(browser=_browser))


def test_a_refused_consent_is_a_clear_auth_error(env: Any) -> None:
    env.configure(scopes="files.content.write files.everything")
    with pytest.raises(AuthError, match="refused"):
        _connect(env, ScriptedUI(browser=_browser))


def test_the_token_endpoint_checks_the_pkce_verifier(env: Any) -> None:
    verifier_challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"  # RFC 7636 appendix B
    redirect = env.account.settings["redirect_uri"]
    response = httpx.get(f"{env.url}/oauth2/authorize", params={
        "client_id": "sandbox-app-key", "response_type": "code", "redirect_uri": redirect, "state": "s",
        "code_challenge": verifier_challenge, "code_challenge_method": "S256", "token_access_type": "offline"})
    code = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(response.headers["Location"]).query))["code"]
    wrong = httpx.post(f"{env.url}/oauth2/token", data={
        "grant_type": "authorization_code", "code": code, "client_id": "sandbox-app-key",
        "redirect_uri": redirect, "code_verifier": "not-the-verifier"})
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"


def test_expired_access_token_is_refreshed_and_the_upload_goes_on(env: Any) -> None:
    before = _stored(env)
    env.app.oauth.expire_access_tokens()
    [delivery] = env.push([env.document("R-1", pdf=b"%PDF r")])
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert env.app.oauth.refreshes == 1
    after = _stored(env)
    assert after.access_token != before.access_token
    assert after.refresh_token == before.refresh_token  # Dropbox does not rotate it; we keep it


def test_a_token_about_to_expire_is_refreshed_before_use(env: Any) -> None:
    token = _stored(env)
    soon = token.model_copy(update={"expires_at": time.time() + 60})
    env.workspace.secrets(env.account.name).set("oauth_token", soon.model_dump_json())
    env.push([env.document("R-2", pdf=b"%PDF r2")])
    assert env.app.oauth.refreshes == 1
    assert not any(status == 401 for _, _, status in env.app.requests)  # refreshed early, not on a 401


def test_a_revoked_login_fails_the_batch_with_an_auth_error(env: Any) -> None:
    env.app.oauth.revoke_all()
    with pytest.raises(AuthError):
        env.push([env.document("R-3", pdf=b"%PDF r3")])


def test_demo_secret_is_a_token_set(env: Any) -> None:
    token = json.loads(env.app.account_secrets()["oauth_token"])
    assert set(token) >= {"access_token", "refresh_token", "expires_at"}


def _no_browser(url: str) -> None:
    raise AssertionError(f"the browser was opened although a working login is stored: {url}")


@pytest.mark.parametrize("ui", [NonInteractiveUI(), ScriptedUI(browser=_no_browser)], ids=["script", "terminal"])
def test_a_working_stored_login_is_reused_without_a_browser(env: Any, ui: Any) -> None:
    """What `invoicesync demo` and scripts do: store the token set, then connect unattended."""
    before = _stored(env)
    assert _auth(env, ui) == []
    assert _stored(env) == before
    # the login was tried, not assumed: with the listing that also tells whether the folder holds files
    assert env.app.count("POST", r"/2/files/list_folder$") == 1
    assert not any(status == 401 for _, _, status in env.app.requests)


def test_a_stored_login_whose_access_token_expired_is_refreshed_and_reused(env: Any) -> None:
    env.app.oauth.expire_access_tokens()
    _auth(env, NonInteractiveUI())
    assert env.app.oauth.refreshes == 1


@pytest.mark.parametrize("flag", [True, "yes"])
def test_relogin_runs_the_browser_even_with_a_working_login(env: Any, flag: object) -> None:
    before = _stored(env)
    ui = ScriptedUI(browser=_browser)
    _auth(env, ui, relogin=flag)
    assert len(ui.opened) == 1
    assert _stored(env).refresh_token != before.refresh_token


def test_relogin_no_keeps_the_stored_login(env: Any) -> None:
    before = _stored(env)
    ui = ScriptedUI(browser=_no_browser)
    assert _auth(env, ui, relogin="no") == []
    assert ui.opened == []
    assert _stored(env) == before  # the same token set, neither replaced nor dropped
    assert env.app.oauth.refreshes == 0 and env.app.count("POST", r"/oauth2/token$") == 0
    assert env.app.count("POST", r"/2/files/list_folder$") == 1  # and it was tried, as without the flag


def test_a_revoked_stored_login_logs_in_again_when_someone_is_there(env: Any) -> None:
    env.app.oauth.revoke_all()
    ui = ScriptedUI(browser=_browser)
    _auth(env, ui)
    assert len(ui.opened) == 1
    assert any("does not work" in line for line in ui.output)
    [delivery] = env.push([env.document("L-1", pdf=b"%PDF l")])
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message


def test_a_revoked_stored_login_is_a_clear_error_when_no_one_is_there(env: Any) -> None:
    env.app.oauth.revoke_all()
    with pytest.raises(AuthError, match="--relogin"):
        _auth(env, NonInteractiveUI())


def test_a_stored_login_without_the_needed_scopes_is_not_reused(env: Any) -> None:
    narrow = _stored(env).model_copy(update={"scope": "files.metadata.read"})
    env.workspace.secrets(env.account.name).set("oauth_token", narrow.model_dump_json())
    with pytest.raises(AuthError, match=r"files\.content\.write"):
        _auth(env, NonInteractiveUI())
    ui = ScriptedUI(browser=_browser)
    _auth(env, ui)
    assert len(ui.opened) == 1 and "files.content.write" in (_stored(env).scope or "")


def test_the_token_endpoint_takes_only_form_encoded_requests(env: Any) -> None:
    as_json = httpx.post(f"{env.url}/oauth2/token", json={"grant_type": "refresh_token", "refresh_token": "x",
                                                          "client_id": "sandbox-app-key"})
    assert as_json.status_code == 400 and as_json.json()["error"] == "invalid_request"
