"""Sync's "Log in again" for a Billit account on OAuth, against the plugin and its sandbox: the same popup
login as + Import, and the account keeps its companies and settings; only the stored token changes."""

from __future__ import annotations

import html
import re
import urllib.parse

from .test_oauth_login import BillitDashboard, _path, billit  # noqa: F401  (billit: the fixture)


def _connect(billit: BillitDashboard) -> str:  # noqa: F811
    """+ Import → Billit, approve, choose the second company; returns its id."""
    login_url, continue_url = billit.begin()
    billit.admin.client.get(_path(billit.logon(login_url)))
    options = re.findall(r'name="company" value="([^"]+)"', billit.admin.client.get(continue_url).text)
    assert billit.admin.post(continue_url, {"company": options[1]}).status_code == 303  # type: ignore[attr-defined]
    return options[1]


def test_log_in_again_replaces_only_the_token_and_keeps_the_companies(billit: BillitDashboard) -> None:  # noqa: F811
    chosen = _connect(billit)
    workspace = billit.admin.workspace
    before = workspace.state.get_account("books")
    old_token = workspace.secrets("books").get("oauth_token")
    assert before is not None and old_token
    sync = billit.admin.client.get("/sync").text
    assert 'action="/accounts/relogin"' in sync and "Log in again" in sync

    page = billit.admin.post("/accounts/relogin", {"account": "books"})
    text: str = page.text  # type: ignore[attr-defined]
    assert page.status_code == 200, text  # type: ignore[attr-defined]
    login_url = html.unescape(re.search(r'id="oauth-login" href="([^"]+)"', text).group(1))  # type: ignore[union-attr]
    continue_url = re.search(r'data-continue="([^"]+)"', text).group(1)  # type: ignore[union-attr]
    back = billit.logon(login_url)
    assert dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(back).query))["state"] in continue_url
    assert billit.admin.client.get(_path(back)).status_code == 200
    saved = billit.admin.client.get(continue_url, follow_redirects=False)
    assert saved.status_code == 303, saved.text  # no checklist: the companies chosen before stay

    after = workspace.state.get_account("books")
    assert after is not None and [c.id for c in after.companies] == [chosen]
    assert after.settings == before.settings
    new_token = workspace.secrets("books").get("oauth_token")
    assert new_token and new_token != old_token


def test_log_in_again_needs_the_csrf_token(billit: BillitDashboard) -> None:  # noqa: F811
    _connect(billit)
    old_token = billit.admin.workspace.secrets("books").get("oauth_token")
    refused = billit.admin.client.post("/accounts/relogin", data={"account": "books", "csrf": "forged"},
                                       follow_redirects=False)
    assert refused.status_code == 403
    assert billit.admin.workspace.secrets("books").get("oauth_token") == old_token
