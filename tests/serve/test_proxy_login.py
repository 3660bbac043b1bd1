"""Reverse-proxy login: the user header is believed only from the configured proxy addresses."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from click.testing import CliRunner
from invoicesync.cli import cli
from invoicesync.errors import ConfigError
from invoicesync.server import ProxyLogin, create_app
from invoicesync.workspace import Workspace
from starlette.testclient import TestClient

HEADER = "X-Forwarded-User"


@pytest.fixture
def client_from(memory_workspace: Workspace) -> Iterator[Callable[[str], TestClient]]:
    """A TestClient whose TCP peer is the given address, over a dashboard trusting 127.0.0.1 and
    10.1.0.0/16 (no password user at all: the proxy logs people in)."""
    app = create_app(memory_workspace, allowed_hosts=["testserver"], schedule_poll=None,
                     proxy_login=ProxyLogin.parse(HEADER, ["127.0.0.1", "10.1.0.0/16"]))
    clients: list[TestClient] = []

    def make(address: str) -> TestClient:
        client = TestClient(app, client=(address, 40000), follow_redirects=False)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.mark.parametrize("proxy", ["127.0.0.1", "10.1.20.3", "::ffff:10.1.0.9"])
def test_the_trusted_proxys_user_is_logged_in(client_from: Callable[[str], TestClient], proxy: str) -> None:
    client = client_from(proxy)
    page = client.get("/sync", headers={HEADER: "alice@example.com"})
    assert page.status_code == 200 and "alice@example.com" in page.text


@pytest.mark.parametrize("peer", ["10.2.0.1", "192.168.1.5", "::1", "testclient"])
def test_the_header_from_any_other_address_is_refused(client_from: Callable[[str], TestClient], peer: str) -> None:
    client = client_from(peer)
    for path in ("/sync", "/login", "/metrics", "/healthz"):
        response = client.get(path, headers={HEADER: "admin"})
        assert response.status_code == 403, path
        assert "only accepted from the trusted proxy" in response.text
    assert client.get("/sync").status_code == 303  # without it: the ordinary login, nothing more


def test_the_header_cannot_name_two_users_or_none(client_from: Callable[[str], TestClient]) -> None:
    client = client_from("127.0.0.1")
    assert client.get("/sync", headers=[(HEADER, "alice"), (HEADER, "mallory")]).status_code == 403
    assert client.get("/sync", headers={HEADER: " "}).status_code == 403


def test_a_proxy_session_ends_when_the_proxy_stops_sending_the_header(
        client_from: Callable[[str], TestClient]) -> None:
    client = client_from("127.0.0.1")
    assert client.get("/sync", headers={HEADER: "alice"}).status_code == 200
    assert client.get("/sync").status_code == 303  # the proxy no longer vouches: the cookie alone is not enough
    assert client.get("/sync", headers={HEADER: "alice"}).status_code == 200
    # another user through the same browser gets a new session, not alice's
    assert "bob" in client.get("/sync", headers={HEADER: "bob"}).text


def test_a_proxy_user_still_needs_the_csrf_token_to_post(client_from: Callable[[str], TestClient]) -> None:
    client = client_from("127.0.0.1")
    page = client.get("/sync", headers={HEADER: "alice"}).text
    token = page.split('name="csrf" value="')[1].split('"')[0]
    data = {"account": "memory", "schedule": "15m"}
    assert client.post("/sync/schedule", data=data, headers={HEADER: "alice"}).status_code == 403
    assert client.post("/sync/schedule", data={**data, "csrf": token}, headers={HEADER: "alice"}).status_code == 303


def test_a_header_without_a_trusted_proxy_or_a_bad_address_is_a_setup_error(memory_workspace: Workspace) -> None:
    with pytest.raises(ConfigError, match="--trusted-proxy"):
        ProxyLogin.parse(HEADER, [])
    with pytest.raises(ConfigError, match="--trusted-proxy"):
        ProxyLogin.parse(HEADER, ["10.0.0.300"])
    result = CliRunner().invoke(cli, ["serve", "--trusted-proxy", "127.0.0.1"])
    assert result.exit_code != 0 and "--trusted-proxy goes with --proxy-user-header" in result.output
    result = CliRunner().invoke(cli, ["serve", "--proxy-user-header", HEADER])
    assert result.exit_code != 0 and "needs the proxy's address" in result.output


def test_a_proxy_session_is_void_once_the_server_no_longer_takes_the_header(
        client_from: Callable[[str], TestClient], memory_workspace: Workspace) -> None:
    proxied = client_from("127.0.0.1")
    assert proxied.get("/sync", headers={HEADER: "alice"}).status_code == 200
    plain = create_app(memory_workspace, allowed_hosts=["testserver"], schedule_poll=None)  # restarted without it
    with TestClient(plain, client=("127.0.0.1", 40000), follow_redirects=False,
                    cookies=dict(proxied.cookies)) as client:
        assert client.get("/sync").status_code == 303  # the same signed cookie no longer logs alice in
