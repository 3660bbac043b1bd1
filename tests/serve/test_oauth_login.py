"""+ Import → Billit with OAuth, against the real plugin and its sandbox: Billit's logon page (which, like
Billit, refuses a redirect URI not registered for the client), back to the dashboard's own
``/oauth/callback``, the company checklist, the saved account. An answer whose ``state`` the
dashboard did not issue is shown for pasting into the CLI, its code left unspent."""

from __future__ import annotations

import html
import re
import secrets
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from invoicesync.plugins import Plugins
from invoicesync.server import Users, create_app
from invoicesync.workspace import Workspace
from starlette.testclient import TestClient

from .conftest import ADMIN, PASSWORD, Dashboard

pytest.importorskip("invoicesync_billit")

#: The dashboard as the browser sees it; Billit takes only an https redirect URI that is not loopback.
BASE = "https://dashboard.example"
CALLBACK = f"{BASE}/oauth/callback"


@dataclass
class BillitDashboard:
    admin: Dashboard
    app: Any  #: the Billit sandbox
    url: str
    verify: Any
    settings: dict[str, str]

    def logon(self, login_url: str, *, decision: str = "approve") -> str:
        """The person on Billit's logon page: e-mail, password, approve. Returns where Billit sends them."""
        from invoicesync_billit.sandbox.app import DEMO_USER

        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(login_url).query))
        with httpx.Client(verify=self.verify) as browser:
            assert browser.get(login_url).status_code == 200
            answer = browser.post(f"{self.url}/Account/Logon", data={
                **query, "email": DEMO_USER[0], "password": DEMO_USER[1], "decision": decision})
        assert answer.status_code in (302, 303), answer.text
        return answer.headers["Location"]

    def begin(self, name: str = "books") -> tuple[str, str]:
        """Submit + Import → Billit; returns (the login URL in the page, the continue URL)."""
        from invoicesync_billit.sandbox.app import DEMO_CLIENT_SECRET

        page = self.admin.post("/connect/import/billit", {"name": name, **self.settings,
                                                          "client_secret": DEMO_CLIENT_SECRET})
        assert page.status_code == 200, page.text  # type: ignore[attr-defined]
        text: str = page.text  # type: ignore[attr-defined]
        assert DEMO_CLIENT_SECRET not in text
        login_url = html.unescape(re.search(r'id="oauth-login" href="([^"]+)"', text).group(1))  # type: ignore[union-attr]
        assert 'data-popup="billit-login"' in text
        continue_url = re.search(r'data-continue="([^"]+)"', text).group(1)  # type: ignore[union-attr]
        return login_url, continue_url


@pytest.fixture
def billit(workspace_factory: Any, serve_sandbox: Any) -> Iterator[BillitDashboard]:
    workspace: Workspace = workspace_factory(plugins=Plugins.discover(["billit"]))
    Users(workspace.home).add(ADMIN, PASSWORD)
    # The dashboard's callback is registered for the client, as it must be with Billit support.
    app = workspace.plugins.call("billit", "sandbox", options={"documents": 1, "seed": 3, "redirect_uris": CALLBACK})
    running = serve_sandbox(app, tls=getattr(app, "tls", False), tls_dir=workspace.home / "ca")
    settings = {k: str(v) for k, v in app.oauth_settings(running.url).items()}
    if running.ca_file:
        settings["ca_bundle"] = str(running.ca_file)
    with TestClient(create_app(workspace, allowed_hosts=["dashboard.example"]), base_url=BASE) as client:
        admin = Dashboard(client, workspace)
        admin.login()
        yield BillitDashboard(admin, app, running.url, str(running.ca_file) if running.ca_file else True, settings)


def _path(url: str) -> str:
    split = urllib.parse.urlsplit(url)
    return f"{split.path}?{split.query}" if split.query else split.path


def test_billits_login_runs_through_the_dashboards_callback_then_the_checklist(billit: BillitDashboard) -> None:
    login_url, continue_url = billit.begin()
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(login_url).query))
    assert query["redirect_uri"] == CALLBACK and set(query) == {"client_id", "redirect_uri", "state"}
    assert continue_url == f"/connect/oauth/{query['state']}"
    back = billit.logon(login_url)
    assert back.startswith(CALLBACK + "?")
    client = billit.admin.client
    returned = client.get(_path(back))
    assert returned.status_code == 200 and "Login received" in returned.text
    assert f'data-continue="{continue_url}"' in returned.text
    checklist = client.get(continue_url)
    assert checklist.status_code == 200, checklist.text
    options = re.findall(r'name="company" value="([^"]+)"', checklist.text)
    assert len(options) >= 2
    assert billit.admin.workspace.state.get_account("books") is None  # saved only once chosen
    saved = billit.admin.post(continue_url, {"company": options[1]})
    assert saved.status_code == 303, saved.text  # type: ignore[attr-defined]
    account = billit.admin.workspace.state.get_account("books")
    assert account is not None and [c.id for c in account.companies] == [options[1]]
    assert account.settings["auth"] == "oauth"
    secrets_ = billit.admin.workspace.secrets("books")
    assert secrets_.get("oauth_token") and "client_secret" not in str(account.settings)
    # the login is single-use on the dashboard's side too
    assert client.get(continue_url).status_code == 404


def test_a_state_the_dashboard_did_not_issue_is_shown_for_the_cli_and_its_code_is_left_unspent(
        billit: BillitDashboard) -> None:
    from invoicesync_billit.sandbox.app import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

    # `invoicesync connect billit` with redirect_uri = the dashboard's callback: its own state
    cli_state = secrets.token_urlsafe(24)
    login_url = f"{billit.url}/Account/Logon?" + urllib.parse.urlencode(
        {"client_id": DEMO_CLIENT_ID, "redirect_uri": CALLBACK, "state": cli_state})
    back = billit.logon(login_url)
    billit.admin.client.cookies.clear()  # the person at the terminal need not be logged in to the dashboard
    page = billit.admin.client.get(_path(back))
    assert page.status_code == 200
    assert html.escape(back) in page.text and "invoicesync connect" in page.text
    assert "set-cookie" not in page.headers
    code = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(back).query))["code"]
    with httpx.Client(verify=billit.verify) as cli:
        exchanged = cli.post(f"{billit.url}/OAuth2/token", json={
            "grant_type": "authorization_code", "code": code, "client_id": DEMO_CLIENT_ID,
            "client_secret": DEMO_CLIENT_SECRET, "redirect_uri": CALLBACK})
    assert exchanged.status_code == 200, exchanged.text  # the CLI can still trade it


def test_the_callback_works_without_the_session_cookie_and_another_session_cannot_finish_the_login(
        billit: BillitDashboard) -> None:
    login_url, continue_url = billit.begin()
    back = billit.logon(login_url)
    jar = dict(billit.admin.client.cookies)
    billit.admin.client.cookies.clear()  # SameSite=strict: a redirect from Billit carries no session
    returned = billit.admin.client.get(_path(back))
    assert returned.status_code == 200 and "Login received" in returned.text
    assert "set-cookie" not in returned.headers  # a fresh session would log the person out
    other = Dashboard(billit.admin.client, billit.admin.workspace)
    other.login()  # the same user, another session: it did not begin this login
    assert billit.admin.client.get(continue_url).status_code == 404
    billit.admin.client.cookies.clear()
    billit.admin.client.cookies.update(jar)
    assert billit.admin.client.get(continue_url).status_code == 200


def test_a_refused_login_says_so_and_keeps_nothing(billit: BillitDashboard) -> None:
    login_url, continue_url = billit.begin()
    back = billit.logon(login_url, decision="deny")
    assert billit.admin.client.get(_path(back)).status_code == 200
    refused = billit.admin.client.get(continue_url)
    assert refused.status_code == 400 and "The login did not work" in refused.text
    assert "access_denied" in refused.text
    assert billit.admin.workspace.state.get_account("books") is None
    assert not billit.admin.workspace.secrets("books").get("oauth_token")


def test_billits_api_key_login_still_connects_from_the_form(billit: BillitDashboard) -> None:
    settings = {**billit.settings, "auth": "api_key"}
    key = billit.app.account_secrets()["api_key"]
    first = billit.admin.post("/connect/import/billit", {"name": "keyed", **settings, "api_key": key})
    assert 'name="company"' in first.text and "oauth-login" not in first.text  # type: ignore[attr-defined]


def test_behind_a_proxy_the_public_url_is_where_the_login_comes_back(workspace_factory: Any,
                                                                       serve_sandbox: Any) -> None:
    """The dashboard listens on plain http behind TLS; --public-url names the callback people reach."""
    public = "https://invoices.example.com"
    workspace: Workspace = workspace_factory(plugins=Plugins.discover(["billit"]))
    Users(workspace.home).add(ADMIN, PASSWORD)
    app = workspace.plugins.call("billit", "sandbox", options={"documents": 1, "seed": 3,
                                                               "redirect_uris": f"{public}/oauth/callback"})
    running = serve_sandbox(app, tls=getattr(app, "tls", False), tls_dir=workspace.home / "ca")
    settings = {k: str(v) for k, v in app.oauth_settings(running.url).items()}
    if running.ca_file:
        settings["ca_bundle"] = str(running.ca_file)
    dashboard = create_app(workspace, allowed_hosts=["127.0.0.1"], public_url=public)
    with TestClient(dashboard, base_url="http://127.0.0.1:8765") as client:
        admin = Dashboard(client, workspace)
        admin.login()
        billit = BillitDashboard(admin, app, running.url, str(running.ca_file) if running.ca_file else True, settings)
        login_url, continue_url = billit.begin()
        back = billit.logon(login_url)
        assert back.startswith(f"{public}/oauth/callback?")
        assert "Login received" in client.get(_path(back)).text  # the proxy forwards the path as it came
        assert 'name="company"' in client.get(continue_url).text
        # an answer for the CLI is shown with the public address, the one its redirect_uri names
        foreign = client.get(f"/oauth/callback?code=c&state={secrets.token_urlsafe(8)}")
        assert f"{public}/oauth/callback?code=c&amp;state=" in foreign.text


def test_a_missing_client_secret_is_asked_for_in_the_form_not_only_in_the_cli(billit: BillitDashboard) -> None:
    page = billit.admin.post("/connect/import/billit", {"name": "nosecret", **billit.settings})
    assert page.status_code == 400  # type: ignore[attr-defined]
    text: str = page.text  # type: ignore[attr-defined]
    assert "fill it in below" in text and "client secret" in text and "oauth-login" not in text
