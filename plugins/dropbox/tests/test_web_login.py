"""The dashboard's two-request login (auth_begin, then auth_complete with the callback address),
against the sandbox's OAuth server: PKCE whose verifier stays on the server, the registered
callback only, the token set kept once the answer checks out."""

from __future__ import annotations

import urllib.parse
from typing import Any

import httpx
import pytest
from invoicesync import AuthError, AuthStart
from invoicesync.http import TokenSet
from invoicesync.testing import ScriptedUI

CALLBACK = "https://dashboard.example/oauth/callback"


def _hook(env: Any, name: str, **kwargs: Any) -> Any:
    ctx = env.context(ui=ScriptedUI())
    try:
        return env.workspace.plugins.call("dropbox", name, account=env.account, ctx=ctx, **kwargs)
    finally:
        ctx.close()


def _consent(url: str) -> str:
    answer = httpx.get(url, follow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"]


def test_begin_then_complete_logs_in_with_pkce_through_the_servers_callback(env: Any) -> None:
    env.app.oauth.redirects.register(CALLBACK)
    env.workspace.secrets(env.account.name).delete("oauth_token")
    started = _hook(env, "auth_begin", redirect_uri=CALLBACK)
    assert isinstance(started, AuthStart) and started.verifier and started.redirect_uri == CALLBACK
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(started.url).query))
    assert query["redirect_uri"] == CALLBACK and query["state"] == started.state
    assert query["code_challenge_method"] == "S256" and started.verifier not in started.url
    assert query["token_access_type"] == "offline"
    assert not env.workspace.secrets(env.account.name).get("oauth_token")  # nothing kept before the answer
    back = _consent(started.url)
    assert _hook(env, "auth_complete", callback_url=back, started=started) == []
    token = TokenSet.model_validate_json(env.workspace.secrets(env.account.name).get("oauth_token"))
    assert token.refresh_token


def test_an_answer_for_another_login_is_refused_before_its_code_is_traded(env: Any) -> None:
    env.app.oauth.redirects.register(CALLBACK)
    mine = _hook(env, "auth_begin", redirect_uri=CALLBACK)
    theirs = _hook(env, "auth_begin", redirect_uri=CALLBACK)
    back = _consent(theirs.url)
    with pytest.raises(AuthError, match="state mismatch"):
        _hook(env, "auth_complete", callback_url=back, started=mine)
    _hook(env, "auth_complete", callback_url=back, started=theirs)  # its code was not spent


def test_an_unregistered_callback_is_refused_by_the_sandbox_as_by_dropbox(env: Any) -> None:
    started = _hook(env, "auth_begin", redirect_uri="https://elsewhere.example/oauth/callback")
    assert httpx.get(started.url, follow_redirects=False, timeout=10).status_code == 400
