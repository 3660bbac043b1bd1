"""Core OAuth: the browser step for loopback and registered (pasted) redirect URIs, and the retry
rule for token refreshes (single-use rotating refresh tokens are resent once, never guessed at)."""

from __future__ import annotations

import json
import urllib.parse

import httpx
import pytest
from invoicesync import AuthError, ConfigError
from invoicesync.http import HttpClient, OAuth2Client, TokenSet, authorize_in_browser, check_redirect_uri
from invoicesync.testing import ScriptedUI, loopback_redirect_uri


def _redirect_of(url: str) -> str:
    return urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["redirect_uri"][0]


def _build(redirect_uri: str, state: str) -> str:
    return "https://login.example/authorize?" + urllib.parse.urlencode({"redirect_uri": redirect_uri, "state": state})


def _approving_browser(url: str) -> None:
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    back = query["redirect_uri"][0] + "?" + urllib.parse.urlencode({"code": "c0de", "state": query["state"][0]})
    assert httpx.get(back, timeout=5).status_code == 200


def test_a_loopback_redirect_uri_is_listened_on_at_its_own_port_and_path_and_sent_exactly() -> None:
    registered = loopback_redirect_uri("/oauth/back")
    ui = ScriptedUI(browser=_approving_browser)
    code, sent = authorize_in_browser(ui, _build, redirect_uri=registered)
    assert (code, sent) == ("c0de", registered)
    assert _redirect_of(ui.opened[0]) == registered


def test_a_loopback_redirect_uri_without_a_port_takes_a_free_one() -> None:
    ui = ScriptedUI(browser=_approving_browser)
    code, sent = authorize_in_browser(ui, _build, redirect_uri="http://127.0.0.1/")
    assert code == "c0de" and urllib.parse.urlsplit(sent).port


class Paster(ScriptedUI):
    def __init__(self, answer: str) -> None:
        super().__init__(browser=lambda url: None)
        self.answer = answer

    def prompt(self, text: str, *, secret: bool = False, default: str | None = None) -> str:
        state = urllib.parse.parse_qs(urllib.parse.urlsplit(self.opened[0]).query)["state"][0]
        return self.answer.format(state=state)


def test_any_other_registered_uri_opens_the_browser_and_takes_the_pasted_address() -> None:
    registered = "https://books.example.com/cb"
    ui = Paster(registered + "?code=pasted&state={state}")
    assert authorize_in_browser(ui, _build, redirect_uri=registered) == ("pasted", registered)
    assert _redirect_of(ui.opened[0]) == registered


@pytest.mark.parametrize("pasted, problem", [
    ("https://books.example.com/cb?code=x&state=forged", "state mismatch"),
    ("https://other.example.com/cb?code=x&state={state}", "not the registered redirect URI"),
    ("https://books.example.com/cb?error=access_denied&state={state}", "refused"),
])
def test_a_pasted_answer_is_checked(pasted: str, problem: str) -> None:
    with pytest.raises(AuthError, match=problem):
        authorize_in_browser(Paster(pasted), _build, redirect_uri="https://books.example.com/cb")


@pytest.mark.parametrize("uri", ["/relative", "ftp://x/cb", "http://example.com/cb", "https://x/cb#frag"])
def test_redirect_uris_no_service_registers_are_refused(uri: str) -> None:
    with pytest.raises(ConfigError):
        check_redirect_uri(uri)


def _token_endpoint(answers: list[httpx.Response | Exception], sent: list[dict[str, str]]) -> HttpClient:
    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(dict(urllib.parse.parse_qsl(request.content.decode())))
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return HttpClient("https://auth.test", transport=httpx.MockTransport(handler), sleep=lambda s: None)


OLD = TokenSet(access_token="a1", refresh_token="r1")
FRESH = httpx.Response(200, json={"access_token": "a2", "refresh_token": "r2", "expires_in": 3600})
RELOGIN = "invoicesync connect billit --name books --relogin"


def test_a_rotating_refresh_with_a_lost_answer_is_resent_once_with_the_same_token() -> None:
    sent: list[dict[str, str]] = []
    http = _token_endpoint([httpx.ReadTimeout("lost"), FRESH], sent)
    oauth = OAuth2Client(http, token_url="/token", client_id="app", rotating_refresh_tokens=True, relogin=RELOGIN)
    assert oauth.refresh(OLD).refresh_token == "r2"
    assert [s["refresh_token"] for s in sent] == ["r1", "r1"]


def test_a_rotating_refresh_the_server_already_spent_names_the_relogin_command() -> None:
    sent: list[dict[str, str]] = []
    spent = httpx.Response(400, json={"error": "invalid_grant", "error_description": "already used"})
    http = _token_endpoint([httpx.Response(504), spent], sent)
    oauth = OAuth2Client(http, token_url="/token", client_id="app", rotating_refresh_tokens=True, relogin=RELOGIN)
    with pytest.raises(AuthError, match=f"already used.*{RELOGIN}"):
        oauth.refresh(OLD)
    assert len(sent) == 2  # once, then once more: nothing else is tried


def test_a_rotating_refresh_without_any_answer_twice_stops_there() -> None:
    sent: list[dict[str, str]] = []
    http = _token_endpoint([httpx.ReadTimeout("lost"), httpx.ReadTimeout("lost again")], sent)
    oauth = OAuth2Client(http, token_url="/token", client_id="app", rotating_refresh_tokens=True, relogin=RELOGIN)
    with pytest.raises(AuthError, match="no answer to two refreshes"):
        oauth.refresh(OLD)
    assert len(sent) == 2


def test_a_refresh_token_that_is_not_rotated_is_retried_like_a_read() -> None:
    sent: list[dict[str, str]] = []
    answers: list[httpx.Response | Exception] = [httpx.Response(503), httpx.ReadTimeout("lost"), FRESH]
    oauth = OAuth2Client(_token_endpoint(answers, sent), token_url="/token", client_id="app")
    assert oauth.refresh(OLD).access_token == "a2"
    assert len(sent) == 3


def test_a_lost_answer_to_the_code_exchange_asks_for_a_new_login() -> None:
    sent: list[dict[str, str]] = []
    oauth = OAuth2Client(_token_endpoint([httpx.ReadTimeout("lost")], sent), token_url="/token", client_id="app")
    with pytest.raises(AuthError, match="log in again"):
        oauth.exchange_code("c0de", "http://127.0.0.1:1/cb")
    assert len(sent) == 1  # a code works once: never resent
    assert json.dumps(sent[0]).count("c0de") == 1
