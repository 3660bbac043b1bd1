"""The dashboard is closed by default: no page without a login, no POST without the session's CSRF
token, no secret in any page or file readable by others."""

from __future__ import annotations

import base64
import re
import stat

import pytest
from invoicesync.server import Users, create_app
from invoicesync.server._users import SECRET_FILE, USERS_FILE
from starlette.testclient import TestClient

from .conftest import ADMIN, PASSWORD, Dashboard

PAGES = ["/", "/sync", "/documents", "/history", "/history/1", "/document?id=x", "/document/file?id=x&sha=y",
         "/connect/import", "/connect/export/memtarget", "/sync/events"]
POSTS = ["/sync/run", "/accounts/disconnect", "/accounts/relogin", "/connect/export/memtarget", "/logout"]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_redirects_to_the_login_without_a_session(dashboard: Dashboard, path: str) -> None:
    response = dashboard.client.get(path, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=")


@pytest.mark.parametrize("path", POSTS)
def test_every_post_is_refused_without_a_session(dashboard: Dashboard, path: str) -> None:
    response = dashboard.client.post(path, data={"account": "memory"}, follow_redirects=False)
    assert response.status_code in (303, 403)
    assert dashboard.workspace.state.get_account("memory") is not None  # nothing was done


@pytest.mark.parametrize("path", POSTS)
@pytest.mark.parametrize("token", [None, "forged"])
def test_every_post_needs_the_sessions_csrf_token(admin: Dashboard, path: str, token: str | None) -> None:
    data = {"account": "memory", **({"csrf": token} if token else {})}
    response = admin.client.post(path, data=data, follow_redirects=False)
    assert response.status_code == 403
    assert admin.workspace.state.get_account("memory") is not None
    assert admin.client.get("/sync", follow_redirects=False).status_code == 200  # still logged in


def test_a_csrf_token_in_a_json_body_is_not_enough(admin: Dashboard) -> None:
    response = admin.client.post("/accounts/disconnect", json={"csrf": admin.csrf(), "account": "memory"})
    assert response.status_code == 403


def test_login_needs_its_csrf_token_too(dashboard: Dashboard) -> None:
    dashboard.client.get("/login")
    response = dashboard.client.post("/login", data={"username": ADMIN, "password": PASSWORD},
                                     follow_redirects=False)
    assert response.status_code == 403


def test_a_wrong_password_or_user_is_refused(dashboard: Dashboard) -> None:
    for name, password in ((ADMIN, "wrong password!"), ("nobody", PASSWORD)):
        response = dashboard.client.post("/login", data={"username": name, "password": password,
                                                         "csrf": dashboard.csrf("/login")})
        assert response.status_code == 401
        assert "Wrong user name or password" in response.text
    assert dashboard.client.get("/sync", follow_redirects=False).status_code == 303


def test_the_session_cookie_is_signed_httponly_and_samesite(dashboard: Dashboard) -> None:
    dashboard.client.get("/login")
    response = dashboard.client.post("/login", data={"username": ADMIN, "password": PASSWORD,
                                                     "csrf": dashboard.csrf("/login")}, follow_redirects=False)
    cookie = response.headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
    # a cookie made up by someone without the home's secret is not a session
    forged = base64.b64encode(b'{"user": "admin", "csrf": "x"}').decode()
    other = TestClient(dashboard.client.app, cookies={"invoicesync_session": forged})
    assert other.get("/sync", follow_redirects=False).status_code == 303


def test_login_replaces_the_session_and_logout_ends_it(dashboard: Dashboard) -> None:
    before = dashboard.csrf("/login")
    dashboard.login()
    assert dashboard.csrf() != before  # a token planted before the login is not the session's
    response = dashboard.post("/logout")
    assert response.status_code == 303  # type: ignore[attr-defined]
    assert dashboard.client.get("/sync", follow_redirects=False).status_code == 303


def test_a_removed_user_is_logged_out_at_once(admin: Dashboard) -> None:
    Users(admin.workspace.home).remove(ADMIN)
    assert admin.client.get("/sync", follow_redirects=False).status_code == 303


def test_login_never_redirects_to_another_site(dashboard: Dashboard) -> None:
    response = dashboard.client.post("/login", data={"username": ADMIN, "password": PASSWORD,
                                                     "next": "//evil.example/x", "csrf": dashboard.csrf("/login")},
                                     follow_redirects=False)
    assert response.headers["location"] == "/"


def test_users_and_the_session_secret_are_private_files_without_plain_passwords(dashboard: Dashboard) -> None:
    home = dashboard.workspace.home
    for name in (USERS_FILE, SECRET_FILE):
        assert stat.S_IMODE((home / name).stat().st_mode) == 0o600
    stored = (home / USERS_FILE).read_text()
    assert PASSWORD not in stored and "$argon2id$" in stored
    assert Users(home).verify(ADMIN, PASSWORD)
    assert not Users(home).verify(ADMIN, PASSWORD + "x")


def test_a_short_password_is_refused(dashboard: Dashboard) -> None:
    from invoicesync import ConfigError

    with pytest.raises(ConfigError, match="at least"):
        Users(dashboard.workspace.home).add("short", "abc")


def test_an_unknown_host_header_is_refused(memory_workspace: object) -> None:
    app = create_app(memory_workspace, allowed_hosts=["127.0.0.1"])  # type: ignore[arg-type]
    with TestClient(app, base_url="http://rebound.example") as client:
        assert client.get("/login").status_code == 400


def test_pages_forbid_framing_by_others_and_scripts_from_elsewhere(dashboard: Dashboard) -> None:
    headers = dashboard.client.get("/login").headers
    assert "frame-ancestors 'self'" in headers["content-security-policy"]
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "SAMEORIGIN"


def test_metrics_take_an_admins_basic_auth_and_nothing_less(dashboard: Dashboard) -> None:
    assert dashboard.client.get("/metrics").status_code == 401
    assert dashboard.client.get("/metrics", auth=(ADMIN, "wrong")).status_code == 401
    response = dashboard.client.get("/metrics", auth=(ADMIN, PASSWORD))
    assert response.status_code == 200 and "invoicesync_documents_imported" in response.text


def test_healthz_is_public_and_says_nothing_private(dashboard: Dashboard) -> None:
    response = dashboard.client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_a_secret_typed_into_a_settings_form_is_never_shown_again(admin: Dashboard) -> None:
    from invoicesync.server._forms import settings_fields
    from pydantic import BaseModel

    class KeySettings(BaseModel):
        region: str = "eu"

    fields = settings_fields(KeySettings, ["api_key"], {"region": "us", "api_key": "s3cr3t-value"})
    assert [(f.name, f.input, f.value) for f in fields] == [("region", "text", "us"), ("api_key", "password", "")]
    page = admin.client.get("/sync").text
    assert not re.search(r"s3cr3t", page)
