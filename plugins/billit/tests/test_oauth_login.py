"""Billit's OAuth as strictly as Billit plays it: registered redirect URIs only (a loopback one
is listened on at its port, an https page means the user pastes the address), single-use
10-minute codes, client secrets kept however they were given, refresh tokens resent once after
a lost answer, and every dead login naming the command that fixes it."""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

import httpx
import pytest
from invoicesync import AuthError, PluginKind
from invoicesync.http import DEFAULT_REDIRECT_URI, TokenSet
from invoicesync.plugins import Plugins
from invoicesync.sandbox import Fault
from invoicesync.testing import ScriptedUI
from invoicesync_billit import plugin as billit_plugin
from invoicesync_billit.sandbox import DEMO_API_KEY, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_USER, BillitSandbox

REGISTERED = "https://books.example.com/invoicesync/billit"
RELOGIN = "invoicesync connect billit --name books --relogin"


def _log_in(url: str) -> str:
    """Fill in Billit's logon form; return where Billit sends the browser (not followed)."""
    with httpx.Client(timeout=10) as web:
        page = web.get(url)
        assert page.status_code == 200, page.text
        form = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page.text))
        answer = web.post(urllib.parse.urljoin(url, "/Account/Logon"), follow_redirects=False,
                          data={**form, "email": DEMO_USER[0], "password": DEMO_USER[1], "decision": "approve"})
        assert answer.status_code == 302, answer.text
        return str(answer.headers["location"])


class PastingUI(ScriptedUI):
    """A person with a browser: logs in, lands on the registered page, pastes its address."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(browser=self._browse, **kwargs)
        self.landed: list[str] = []

    def _browse(self, url: str) -> None:
        self.landed.append(_log_in(url))

    def prompt(self, text: str, *, secret: bool = False, default: str | None = None) -> str:
        if "address" in text:
            return self.landed[-1]
        return super().prompt(text, secret=secret, default=default)


def test_a_registered_https_redirect_uri_is_sent_as_is_and_the_user_pastes_the_address(billit: Any) -> None:
    h = billit(documents=3, oauth=True, companies=1, settings={"redirect_uri": REGISTERED})
    h.app.oauth.configure_redirects({"redirect_uris": REGISTERED})  # the only URI this client may use
    ui = PastingUI(answers={"client secret": DEMO_CLIENT_SECRET})
    assert h.connect(ui)
    opened = urllib.parse.parse_qs(urllib.parse.urlsplit(ui.opened[0]).query)
    assert opened["redirect_uri"] == [REGISTERED]  # exactly as registered, nothing added
    assert set(opened) == {"client_id", "redirect_uri", "state"}
    assert ui.landed[0].startswith(REGISTERED + "?code=")
    assert h.list().refs
    assert h.app.oauth.logon_problem(DEMO_CLIENT_ID, DEFAULT_REDIRECT_URI) is not None  # nothing else passes


def test_connect_keeps_redirect_uri_as_a_setting(invoicesync_cli: Any, workspace_factory: Any, serve_sandbox: Any,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """`--redirect_uri` used to be taken as a one-off option and silently ignored."""
    running = serve_sandbox(BillitSandbox(documents=1, companies=1))
    monkeypatch.setenv("INVOICESYNC_BILLIT_API_KEY", DEMO_API_KEY)
    plugins = Plugins.from_objects({"billit": (PluginKind.SOURCE, billit_plugin)})
    result = invoicesync_cli("connect", "billit", "--auth", "api_key", "--api_url", running.url,
                             "--redirect_uri", REGISTERED, plugins=plugins)
    assert result.exit_code == 0, result.output
    account = workspace_factory(plugins).account("billit")
    assert account.settings["redirect_uri"] == REGISTERED


def test_the_logon_page_refuses_a_redirect_uri_that_is_not_registered(billit: Any) -> None:
    h = billit(documents=1, oauth=True)
    for uri in ("http://127.0.0.1:1234/callback", DEFAULT_REDIRECT_URI + "/x", "https://evil.example/cb"):
        page = httpx.get(f"{h.server.url}/Account/Logon",
                         params={"client_id": DEMO_CLIENT_ID, "redirect_uri": uri, "state": "s"})
        assert page.status_code == 400 and "not registered" in page.text, uri


def test_a_pasted_address_from_another_page_is_refused(billit: Any) -> None:
    h = billit(documents=1, oauth=True, settings={"redirect_uri": REGISTERED})
    h.app.oauth.configure_redirects({"redirect_uris": REGISTERED})

    class WrongPaste(PastingUI):
        def prompt(self, text: str, *, secret: bool = False, default: str | None = None) -> str:
            landed = super().prompt(text, secret=secret, default=default)
            return landed.replace("books.example.com", "elsewhere.example") if "address" in text else landed

    with pytest.raises(AuthError, match="not the registered redirect URI"):
        h.connect(WrongPaste(answers={"client secret": DEMO_CLIENT_SECRET}))
    assert h.secret("oauth_token") is None


def test_the_default_registration_is_cores_default_redirect_and_leniency_is_an_option() -> None:
    strict = BillitSandbox(documents=1)
    assert strict.oauth.logon_problem(DEMO_CLIENT_ID, DEFAULT_REDIRECT_URI) is None
    assert strict.oauth.logon_problem(DEMO_CLIENT_ID, "http://localhost:9/cb") is not None
    lenient = BillitSandbox.from_options({"documents": 1, "lenient_redirects": "true"})
    assert lenient.oauth.logon_problem(DEMO_CLIENT_ID, "http://localhost:9/cb") is None
    custom = BillitSandbox.from_options({"documents": 1, "redirect_uris": f"{REGISTERED}, http://127.0.0.1:7/cb"})
    assert custom.oauth.logon_problem(DEMO_CLIENT_ID, "http://127.0.0.1:7/cb") is None
    assert custom.oauth.logon_problem(DEMO_CLIENT_ID, DEFAULT_REDIRECT_URI) is not None


def _code(h: Any) -> str:
    location = _log_in(f"{h.server.url}/Account/Logon?" + urllib.parse.urlencode(
        {"client_id": DEMO_CLIENT_ID, "redirect_uri": h.account.settings["redirect_uri"], "state": "s"}))
    return urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)["code"][0]


def _exchange(h: Any, code: str) -> httpx.Response:
    return httpx.post(f"{h.server.url}/OAuth2/token", json={
        "grant_type": "authorization_code", "code": code, "client_id": DEMO_CLIENT_ID,
        "client_secret": DEMO_CLIENT_SECRET, "redirect_uri": h.account.settings["redirect_uri"]})


def test_codes_work_once_and_for_ten_minutes_and_tokens_live_an_hour(billit: Any) -> None:
    h = billit(documents=1, oauth=True)
    code = _code(h)
    first = _exchange(h, code)
    assert first.status_code == 200 and first.json()["expires_in"] == 3600
    assert _exchange(h, code).json()["error"] == "invalid_grant"  # single use
    late = _code(h)
    clock = h.app.oauth.codes.clock
    h.app.oauth.codes.clock = lambda: clock() + 601
    assert _exchange(h, late).json()["error"] == "invalid_grant"  # 10 minutes, not a second more


def test_a_client_secret_given_in_the_environment_is_kept_for_later_refreshes(
        billit: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    h = billit(documents=3, oauth=True, companies=1)
    monkeypatch.setenv("INVOICESYNC_BOOKS_CLIENT_SECRET", DEMO_CLIENT_SECRET)
    h.connect(ScriptedUI(browser=lambda url: httpx.get(_log_in(url), timeout=10)))
    monkeypatch.delenv("INVOICESYNC_BOOKS_CLIENT_SECRET")  # a later sync, e.g. from systemd
    h.app.expire_access_tokens()
    assert h.list().refs  # the refresh carried the client secret
    assert h.app.oauth.refreshes == 1


def _connected(billit: Any) -> Any:
    h = billit(documents=3, oauth=True, companies=1)
    h.connect(ScriptedUI(answers={"client secret": DEMO_CLIENT_SECRET},
                         browser=lambda url: httpx.get(_log_in(url), timeout=10)))
    h.app.expire_access_tokens()
    return h


def test_a_refresh_whose_request_was_lost_before_billit_saw_it_is_resent_with_the_same_token(billit: Any) -> None:
    h = _connected(billit)
    spent = TokenSet.model_validate_json(h.secret("oauth_token")).refresh_token
    h.app.add_fault(Fault(action="drop", method="POST", path="^/OAuth2/token$"))
    assert h.list().refs  # one run, every document: not failed by one lost token answer
    assert h.app.oauth.refreshes == 1 and spent in h.app.oauth.spent_refresh_tokens


def test_a_refresh_billit_processed_but_whose_answer_was_lost_names_the_relogin_command(billit: Any) -> None:
    h = _connected(billit)
    h.app.add_fault(Fault(action="drop_after", method="POST", path="^/OAuth2/token$"))
    with pytest.raises(AuthError, match=re.escape(RELOGIN)):
        h.list()
    assert h.app.oauth.refreshes == 1  # the resend of the spent token was refused, nothing more


def test_a_revoked_login_names_the_relogin_command_and_relogin_runs_the_browser(billit: Any) -> None:
    h = _connected(billit)
    token = TokenSet.model_validate_json(h.secret("oauth_token"))
    h.app.oauth.revoke(token.refresh_token or "")
    with pytest.raises(AuthError, match=re.escape(RELOGIN)):
        h.list()
    ui = ScriptedUI(browser=lambda url: httpx.get(_log_in(url), timeout=10))
    assert h.connect(ui, options={"relogin": True})
    assert ui.opened  # --relogin went through the browser
    assert h.list().refs


def test_the_logon_page_refuses_a_redirect_uri_with_query_parameters_even_if_registered(billit: Any) -> None:
    """Billit allows no parameters of one's own in ``redirect_uri`` (API notes §2b: they go in
    ``state``), so a registration carrying one gets no code."""
    h = billit(documents=1, oauth=True)
    with_query = REGISTERED + "?tenant=7"
    h.app.oauth.configure_redirects({"redirect_uris": with_query})
    page = httpx.get(f"{h.server.url}/Account/Logon",
                     params={"client_id": DEMO_CLIENT_ID, "redirect_uri": with_query, "state": "s"})
    assert page.status_code == 400 and "query" in page.text


@pytest.mark.parametrize(("settings", "reason"), [
    ({"redirect_uri": REGISTERED + "?tenant=7"}, "query"),
    # Billit registers no localhost redirect URI for production: the default loopback URI cannot work.
    ({"environment": "production"}, "localhost"),
    ({"environment": "production", "redirect_uri": "https://localhost:8443/cb"}, "localhost"),
])
def test_a_login_billit_could_never_answer_is_refused_before_the_browser_opens(
        billit: Any, settings: dict[str, Any], reason: str) -> None:
    h = billit(documents=1, oauth=True, settings=settings)
    h.app.oauth.configure_redirects({"lenient_redirects": "1"})  # only Billit's own rules apply
    ui = PastingUI(answers={"client secret": DEMO_CLIENT_SECRET})
    with pytest.raises(Exception, match=reason):
        h.connect(ui)
    assert ui.opened == [] and h.secret("oauth_token") is None
