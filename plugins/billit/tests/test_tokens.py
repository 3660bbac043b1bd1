"""OAuth tokens mid-sync: an expired access token is refreshed, the single-use refresh token
rotates, and the new one is stored before the new access token is ever used."""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

import httpx
from invoicesync import Checkpoint, DocumentRef
from invoicesync.http import TokenSet
from invoicesync.testing import ScriptedUI
from invoicesync_billit.sandbox import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_USER


def _approve(url: str) -> None:
    with httpx.Client(timeout=10) as web:
        page = web.get(url)
        form = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page.text))
        answer = web.post(urllib.parse.urljoin(url, "/Account/Logon"), follow_redirects=False,
                          data={**form, "email": DEMO_USER[0], "password": DEMO_USER[1], "decision": "approve"})
        web.get(answer.headers["location"])


def connected(billit: Any, documents: int = 150) -> Any:
    h = billit(documents=documents, oauth=True, companies=1)
    h.connect(ScriptedUI(answers={"client secret": DEMO_CLIENT_SECRET}, browser=_approve))
    # The proof of "stored before use": whenever the sandbox sees an access token for the first
    # time, the secret store must already hold the refresh token issued together with it.
    h.violations = []

    def on_first_use(access: str, refresh: str) -> None:
        stored = TokenSet.model_validate_json(h.secret("oauth_token") or "{}")
        if stored.refresh_token != refresh or stored.access_token != access:
            h.violations.append(access)

    h.app.oauth.on_first_use = on_first_use
    return h


def _token_request(h: Any, refresh_token: str) -> httpx.Response:
    return httpx.post(f"{h.server.url}/OAuth2/token", data={
        "grant_type": "refresh_token", "refresh_token": refresh_token,
        "client_id": DEMO_CLIENT_ID, "client_secret": DEMO_CLIENT_SECRET})


def test_access_token_expiring_mid_sync_rotates_the_refresh_token(billit: Any) -> None:
    h = connected(billit)
    before = TokenSet.model_validate_json(h.secret("oauth_token"))
    ctx = h.context()
    ids: list[str] = []
    expired = False
    for item in h.call("list_documents", ctx, company=h.company, cursor=None):
        if isinstance(item, DocumentRef):
            ids.append(item.source_id)
        elif isinstance(item, Checkpoint) and not expired:
            h.app.expire_access_tokens()  # every token issued so far is dead from now on
            expired = True
    documents = [h.fetch(i, ctx) for i in ids[:20]]

    assert len(ids) == len(set(ids)) and len(documents) == 20
    assert h.app.oauth.refreshes == 1
    after = TokenSet.model_validate_json(h.secret("oauth_token"))
    assert after.refresh_token != before.refresh_token
    assert h.violations == []
    # The old refresh token is spent: Billit refuses it. The stored one is the live one.
    assert before.refresh_token is not None and after.refresh_token is not None
    refused = _token_request(h, before.refresh_token)
    assert refused.status_code == 400 and refused.json()["errors"][0]["Code"] == "InvalidRefreshToken"
    assert after.refresh_token in h.app.oauth.refresh_tokens


def test_access_token_expired_answer_injected_as_a_fault(billit: Any) -> None:
    """Early expiry through core's fault machinery: Billit's documented AccessTokenExpired body."""
    h = connected(billit, documents=20)
    h.app.add_fault({"status": 401, "code": "AccessTokenExpired", "path": r"^/v1/orders/\d+$", "times": 1})
    ids = h.list().ids
    document = h.fetch(ids[0])
    assert document.source_id == ids[0]
    assert h.app.oauth.refreshes == 1 and h.violations == []


def test_short_lived_tokens_are_renewed_before_they_expire(billit: Any) -> None:
    """Tokens that live less than the renewal margin are refreshed ahead of use, not after a 401."""
    h = billit(documents=5, oauth=True, companies=1, token_lifetime=30)
    h.connect(ScriptedUI(answers={"client secret": DEMO_CLIENT_SECRET}, browser=_approve))
    assert h.list().ids
    assert h.app.oauth.refreshes >= 1
    assert not any(status == 401 for _, _, status in h.app.requests)


def test_revoked_token_is_not_refreshed_blindly(billit: Any) -> None:
    h = connected(billit, documents=5)
    token = TokenSet.model_validate_json(h.secret("oauth_token"))
    h.app.oauth.revoke(token.access_token)
    import pytest
    from invoicesync import AuthError

    with pytest.raises(AuthError, match="AccessTokenRevoked"):
        h.list()
    assert h.app.oauth.refreshes == 0  # a single-use refresh token is not burnt on a revoked login


def test_token_requests_are_json_bodies_without_an_authorization_header(billit: Any) -> None:
    """Billit's OAuth page: "body type is set to Application/json", "Do not include
    authorisation in header", parameters in the JSON body (the code exchange and the refresh)."""
    h = connected(billit, documents=5)
    h.app.expire_access_tokens()
    assert h.list().ids  # forces a refresh through the token endpoint
    assert h.app.oauth.refreshes == 1
    assert len(h.app.token_requests) == 2  # the code exchange, then the refresh
    assert all(kind.startswith("application/json") and not authorized
               for kind, authorized in h.app.token_requests), h.app.token_requests


def test_a_token_endpoint_refusing_json_gets_the_form_once(billit: Any) -> None:
    h = connected(billit, documents=5)
    h.app.add_fault({"status": 415, "path": r"^/OAuth2/token$", "times": 1})
    h.app.expire_access_tokens()
    assert h.list().ids
    assert h.app.oauth.refreshes == 1 and h.violations == []
    kinds = [kind for kind, _ in h.app.token_requests]
    assert kinds[-1].startswith("application/x-www-form-urlencoded")
