"""Connecting: the interactive OAuth flow (browser driven by an HTTP client), --no-browser,
the API key, and clear errors for a refused login or a company out of reach."""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

import httpx
import pytest
from invoicesync import AuthError, DocumentRef, NonInteractiveUI, PluginKind
from invoicesync.http import TokenSet
from invoicesync.plugins import Plugins
from invoicesync.testing import ScriptedUI
from invoicesync_billit import plugin as billit_plugin
from invoicesync_billit.sandbox import DEMO_API_KEY, DEMO_CLIENT_SECRET, DEMO_USER, BillitSandbox
from invoicesync_billit.settings import ENVIRONMENTS, BillitSettings
from pydantic import ValidationError


def browser(email: str = DEMO_USER[0], password: str = DEMO_USER[1], decision: str = "approve",
            seen: list[str] | None = None) -> Any:
    """A 'browser': GET Billit's logon page, fill in and submit its form, follow the redirect
    to the loopback callback — all over real HTTP."""

    def run(url: str) -> None:
        with httpx.Client(follow_redirects=False, timeout=10) as web:
            page = web.get(url)
            assert page.status_code == 200, page.text
            action = re.search(r'<form method="post" action="([^"]+)"', page.text)
            assert action is not None
            form = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page.text))
            form.update(email=email, password=password, decision=decision)
            answer = web.post(urllib.parse.urljoin(url, action.group(1)), data=form)
            assert answer.status_code == 302, answer.text
            location = answer.headers["location"]
            if seen is not None:
                seen.append(location)
            assert location.startswith("http://127.0.0.1:")
            web.get(location)  # the loopback receiver in invoicesync

    return run


def test_oauth_connect_through_the_logon_page(billit: Any) -> None:
    h = billit(documents=5, oauth=True, companies=3)
    redirects: list[str] = []
    ui = ScriptedUI(answers={"client secret": DEMO_CLIENT_SECRET}, browser=browser(seen=redirects))
    companies = h.connect(ui)

    assert [c.id for c in companies] == [str(c.party_id) for c in h.app.companies]
    assert all(c.name and c.vat_number and c.vat_number.startswith("BE0") for c in companies)
    # The browser was sent to Billit's logon page with exactly the documented parameters.
    opened = urllib.parse.urlsplit(ui.opened[0])
    assert opened.path == "/Account/Logon"
    assert set(urllib.parse.parse_qs(opened.query)) == {"client_id", "redirect_uri", "state"}
    assert "code=" in redirects[0] and "state=" in redirects[0]
    # Tokens are in the secret store, never in settings or state; the refresh token works once.
    token = TokenSet.model_validate_json(h.secret("oauth_token"))
    assert token.refresh_token in h.app.oauth.refresh_tokens
    assert h.secret("client_secret") == DEMO_CLIENT_SECRET
    assert DEMO_CLIENT_SECRET not in h.account.model_dump_json()
    # ... and the connected account can list.
    assert h.list().refs


def test_oauth_wrong_password_then_right_one_is_not_needed_twice(billit: Any) -> None:
    h = billit(documents=1, oauth=True)
    h.workspace.secrets(h.account.name).set("client_secret", DEMO_CLIENT_SECRET)

    def stubborn(url: str) -> None:
        with httpx.Client(timeout=10) as web:
            page = web.get(url)
            form = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page.text))
            wrong = web.post(urllib.parse.urljoin(url, "/Account/Logon"),
                             data={**form, "email": DEMO_USER[0], "password": "nope", "decision": "approve"})
            assert wrong.status_code == 200 and "Wrong e-mail or password" in wrong.text
        browser()(url)

    assert h.connect(ScriptedUI(browser=stubborn))


def test_oauth_refused_login_is_a_clear_auth_error(billit: Any) -> None:
    h = billit(documents=1, oauth=True)
    ui = ScriptedUI(answers={"client secret": DEMO_CLIENT_SECRET}, browser=browser(decision="deny"))
    with pytest.raises(AuthError, match="refused"):
        h.connect(ui)
    assert h.secret("oauth_token") is None


def test_oauth_no_browser_pastes_the_redirect_url(billit: Any) -> None:
    h = billit(documents=1, oauth=True)
    h.workspace.secrets(h.account.name).set("client_secret", DEMO_CLIENT_SECRET)

    class PastingUI(ScriptedUI):
        def prompt(self, text: str, *, secret: bool = False, default: str | None = None) -> str:
            url = re.search(r"(http\S+/Account/Logon\S+)", "\n".join(self.output))
            assert url is not None, self.output
            with httpx.Client(follow_redirects=False, timeout=10) as web:
                # The sandbox's ?auto=1 approves at once; the redirect is not followed (no browser).
                answer = web.get(url.group(1) + "&auto=1")
            return str(answer.headers["location"])

    ui = PastingUI()
    assert h.connect(ui, options={"no_browser": True})
    assert ui.opened == []  # --no-browser never tries to open one
    assert h.secret("oauth_token")


def test_oauth_without_client_id_says_what_to_set(billit: Any) -> None:
    h = billit(documents=1, oauth=True, settings={"client_id": None})
    h.workspace.secrets(h.account.name).set("client_secret", DEMO_CLIENT_SECRET)
    from invoicesync import ConfigError

    with pytest.raises(ConfigError, match="client_id"):
        h.connect(ScriptedUI(browser=browser()))


def test_api_key_is_prompted_checked_and_stored(billit: Any) -> None:
    h = billit(documents=1)
    h.workspace.secrets(h.account.name).delete("api_key")
    ui = ScriptedUI(answers={"API key": DEMO_API_KEY})
    companies = h.connect(ui)
    assert len(companies) == 2
    assert h.secret("api_key") == DEMO_API_KEY
    assert DEMO_API_KEY not in " ".join(ui.output)


def test_wrong_api_key_is_refused_and_not_stored(billit: Any) -> None:
    h = billit(documents=1)
    h.workspace.secrets(h.account.name).delete("api_key")
    with pytest.raises(AuthError, match=r"InvalidApiKey|API key"):
        h.connect(ScriptedUI(answers={"API key": "not-the-key"}))
    assert h.secret("api_key") is None


def test_company_out_of_reach_is_named(billit: Any) -> None:
    h = billit(documents=3)
    h.connect()
    gone = h.account.companies[1]
    h.app.unreachable.add(int(gone.id))
    with pytest.raises(AuthError, match=re.escape(gone.name)) as info:
        h.list(company=gone)
    assert gone.id in str(info.value)
    assert h.list().refs  # the other company still works


def test_connect_with_sandbox_flag_stores_it_and_later_syncs_use_billits_sandbox(
        invoicesync_cli: Any, workspace_factory: Any, serve_sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """`invoicesync connect billit --sandbox` is a setting: it is saved with the account, and a
    later context (a later sync) still talks to Billit's sandbox hosts, not production."""
    app = BillitSandbox(documents=6, companies=1)
    running = serve_sandbox(app)
    # Billit's real hosts are out of reach in tests: point the host table at loopback (production
    # at a closed port). What is under test is which entry is chosen, and that the choice sticks.
    monkeypatch.setitem(ENVIRONMENTS, "sandbox", {"api": running.url, "login": running.url})
    monkeypatch.setitem(ENVIRONMENTS, "production", {"api": "http://127.0.0.1:9", "login": "http://127.0.0.1:9"})
    monkeypatch.setenv("INVOICESYNC_BILLIT_API_KEY", DEMO_API_KEY)
    plugins = Plugins.from_objects({"billit": (PluginKind.SOURCE, billit_plugin)})

    result = invoicesync_cli("connect", "billit", "--sandbox", "--auth", "api_key", plugins=plugins)
    assert result.exit_code == 0, result.output

    workspace = workspace_factory(plugins)
    account = workspace.account("billit")
    assert account.settings == {"sandbox": True, "auth": "api_key"}  # stored, not a one-off option
    ctx = workspace.context(account)  # what a later `invoicesync sync` builds
    assert ctx.settings.environment == "sandbox" and ctx.settings.api_base() == running.url
    before = len(app.requests)
    items = list(plugins.call("billit", "list_documents", account=account, company=account.companies[0],
                              cursor=None, ctx=ctx))
    assert [i for i in items if isinstance(i, DocumentRef)]
    assert len(app.requests) > before  # the listing went to the sandbox host


def test_sandbox_setting_and_environment_are_one_choice() -> None:
    assert BillitSettings(sandbox=True).api_base() == "https://api.sandbox.billit.be"
    assert BillitSettings(sandbox=True).login_base() == "https://my.sandbox.billit.be"
    assert BillitSettings(environment="sandbox").sandbox is True
    assert BillitSettings().api_base() == "https://api.billit.be" and BillitSettings().sandbox is False
    with pytest.raises(ValidationError, match="contradicts"):
        BillitSettings(sandbox=True, environment="production")


def test_connect_without_a_person_reuses_a_stored_oauth_login(billit: Any) -> None:
    """Scripts and the demo: a stored token set is checked against Billit, no browser is needed."""
    h = billit(documents=3, oauth=True, companies=1)
    secrets = h.workspace.secrets(h.account.name)
    secrets.set("client_secret", DEMO_CLIENT_SECRET)
    secrets.set("oauth_token", TokenSet.from_response(h.app.issue_login()).model_dump_json())
    assert h.connect(NonInteractiveUI())
    assert h.list().refs


def test_connect_without_a_person_refuses_a_dead_stored_login_clearly(billit: Any) -> None:
    h = billit(documents=1, oauth=True, companies=1)
    secrets = h.workspace.secrets(h.account.name)
    secrets.set("client_secret", DEMO_CLIENT_SECRET)
    token = TokenSet.from_response(h.app.issue_login())
    h.app.oauth.revoke(token.access_token)
    secrets.set("oauth_token", token.model_dump_json())
    with pytest.raises(AuthError, match="refused the login"):
        h.connect(NonInteractiveUI())
