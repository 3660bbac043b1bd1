"""Core's CodeFlow: the two halves a web server runs in two requests (begin, complete) are the
ones the terminal's ``in_browser`` runs, so the flow exists once."""

from __future__ import annotations

import urllib.parse

import httpx
import pytest
from invoicesync import AuthError, ConfigError
from invoicesync.http import CodeFlow, HttpClient, OAuth2Client, TokenSet, callback_state
from invoicesync.testing import ScriptedUI, loopback_redirect_uri

CALLBACK = "https://dashboard.example/oauth/callback"


def _flow(sent: list[dict[str, str]], kept: list[TokenSet], *, pkce: bool = True) -> CodeFlow:
    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(dict(urllib.parse.parse_qsl(request.content.decode())))
        return httpx.Response(200, json={"access_token": "a1", "refresh_token": "r1", "expires_in": 3600})

    http = HttpClient("https://auth.test", transport=httpx.MockTransport(handler), sleep=lambda s: None)
    oauth = OAuth2Client(http, token_url="/token", client_id="app")
    return CodeFlow(oauth, "https://login.example/authorize", {"client_id": "app", "scope": None}, pkce=pkce,
                    keep=kept.append)


def _answer(url: str, **extra: str) -> str:
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    return query["redirect_uri"] + "?" + urllib.parse.urlencode({"code": "c0de", "state": query["state"], **extra})


def test_begin_and_complete_trade_the_code_once_with_the_verifier_and_keep_the_tokens() -> None:
    sent: list[dict[str, str]] = []
    kept: list[TokenSet] = []
    flow = _flow(sent, kept)
    started = flow.begin(CALLBACK)
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(started.url).query))
    assert query["redirect_uri"] == CALLBACK and query["state"] == started.state and "scope" not in query
    assert query["code_challenge_method"] == "S256" and started.verifier and started.verifier not in started.url
    assert started.verifier not in repr(started)
    assert callback_state(_answer(started.url)) == started.state
    flow.complete(_answer(started.url), started)
    assert [s["code_verifier"] for s in sent] == [started.verifier]
    assert sent[0]["redirect_uri"] == CALLBACK and [t.refresh_token for t in kept] == ["r1"]


@pytest.mark.parametrize(("answer", "problem"), [
    (lambda url: _answer(url).replace("state=", "state=x"), "state mismatch"),
    (lambda url: _answer(url).replace("dashboard.example", "other.example"), "not the registered redirect URI"),
    (lambda url: _answer(url, error="access_denied"), "refused"),
])
def test_an_answer_that_does_not_check_out_trades_nothing(answer: object, problem: str) -> None:
    sent: list[dict[str, str]] = []
    flow = _flow(sent, [])
    started = flow.begin(CALLBACK)
    with pytest.raises(AuthError, match=problem):
        flow.complete(answer(started.url), started)  # type: ignore[operator]
    assert sent == []


def test_begin_refuses_a_redirect_uri_no_service_registers() -> None:
    with pytest.raises(ConfigError, match="https"):
        _flow([], []).begin("http://dashboard.example/oauth/callback")


def test_the_terminal_runs_the_same_halves_on_a_loopback_listener() -> None:
    sent: list[dict[str, str]] = []
    kept: list[TokenSet] = []

    def browser(url: str) -> None:
        assert httpx.get(_answer(url), timeout=5).status_code == 200

    registered = loopback_redirect_uri()
    _flow(sent, kept).in_browser(ScriptedUI(browser=browser), redirect_uri=registered)
    assert sent[0]["redirect_uri"] == registered and sent[0]["code_verifier"] and kept
