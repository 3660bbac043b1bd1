"""A login Billit refuses even after a refresh names the command that fixes it, on a fetch as on
the listing, and that command works for API-key accounts too (it asks for a new key)."""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

import httpx
import pytest
from invoicesync import AuthError, DocumentError
from invoicesync.testing import ScriptedUI
from invoicesync_billit.sandbox import DEMO_API_KEY, DEMO_CLIENT_SECRET, DEMO_USER

RELOGIN = "invoicesync connect billit --name books --relogin"


def _approve(url: str) -> None:
    with httpx.Client(timeout=10) as web:
        page = web.get(url)
        form = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page.text))
        answer = web.post(urllib.parse.urljoin(url, "/Account/Logon"), follow_redirects=False,
                          data={**form, "email": DEMO_USER[0], "password": DEMO_USER[1], "decision": "approve"})
        web.get(answer.headers["location"])


def test_a_fetch_refused_after_a_refresh_names_the_relogin_command(billit: Any) -> None:
    h = billit(documents=3, oauth=True, companies=1)
    h.connect(ScriptedUI(answers={"client secret": DEMO_CLIENT_SECRET}, browser=_approve))
    ids = h.list().ids
    # Billit's own "refresh me" answer, still given after the refresh (e.g. the user was removed).
    h.app.add_fault({"status": 401, "code": "AccessTokenExpired", "path": r"^/v1/orders/\d+$", "times": None})
    with pytest.raises(DocumentError, match=re.escape(RELOGIN)):
        h.fetch(ids[0])
    # The new token is refused at once too: one refresh (a single-use refresh token is not spent
    # on every attempt), then the refusal is reported.
    assert h.app.oauth.refreshes == 1


def test_the_listing_names_the_relogin_command_once(billit: Any) -> None:
    h = billit(documents=3, oauth=True, companies=1)
    h.connect(ScriptedUI(answers={"client secret": DEMO_CLIENT_SECRET}, browser=_approve))
    h.app.add_fault({"status": 401, "path": r"^/v1/orders$", "times": None})
    with pytest.raises(AuthError) as refused:
        h.list()
    assert str(refused.value).count(RELOGIN) == 1


def test_relogin_of_an_api_key_account_asks_for_a_new_key(billit: Any) -> None:
    h = billit(documents=3, companies=1)
    h.connect()
    ids = h.list().ids
    h.workspace.secrets("books").set("api_key", "a-key-billit-no-longer-takes")
    with pytest.raises(DocumentError, match=re.escape(RELOGIN)):
        h.fetch(ids[0])
    ui = ScriptedUI(answers={"api key": DEMO_API_KEY})
    assert h.connect(ui, options={"relogin": True})
    assert h.secret("api_key") == DEMO_API_KEY
    assert h.list().ids
