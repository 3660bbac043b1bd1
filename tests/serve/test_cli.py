"""`invoicesync serve` and `serve-user`: thin commands over the server package."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from invoicesync.server import Users


def test_serve_user_add_stores_a_hash_in_a_private_file(invoicesync_cli: Callable[..., Any],
                                                        invoicesync_home: Path) -> None:
    result = invoicesync_cli("serve-user", "add", "alice", "--password-stdin", input="a long passphrase\n")
    assert result.exit_code == 0, result.output
    assert "a long passphrase" not in result.output
    assert Users(invoicesync_home).verify("alice", "a long passphrase")
    assert stat.S_IMODE((invoicesync_home / "server-users.json").stat().st_mode) == 0o600
    assert invoicesync_cli("serve-user", "list").output.split() == ["alice"]
    assert invoicesync_cli("serve-user", "remove", "alice").exit_code == 0
    assert invoicesync_cli("serve-user", "remove", "alice").exit_code == 2


def test_serve_user_refuses_a_short_password(invoicesync_cli: Callable[..., Any]) -> None:
    result = invoicesync_cli("serve-user", "add", "bob", "--password-stdin", input="short\n")
    assert result.exit_code == 2 and "at least 12" in result.output


def test_serve_refuses_to_start_without_a_user(invoicesync_cli: Callable[..., Any],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("must not start"))
    result = invoicesync_cli("serve")
    assert result.exit_code == 2 and "serve-user add" in result.output


def test_serve_listens_on_loopback_unless_told_public(invoicesync_cli: Callable[..., Any], invoicesync_home: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    Users(invoicesync_home).add("alice", "a long passphrase")
    started: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: started.append(kwargs))
    assert invoicesync_cli("serve").exit_code == 0
    assert started[-1]["host"] == "127.0.0.1" and started[-1]["timeout_graceful_shutdown"] > 0
    refused = invoicesync_cli("serve", "--host", "0.0.0.0")
    assert refused.exit_code == 2 and "--public" in refused.output
    assert invoicesync_cli("serve", "--host", "0.0.0.0", "--public").exit_code == 0
    assert started[-1]["host"] == "0.0.0.0"


def test_without_the_server_extra_the_commands_say_what_to_install(invoicesync_cli: Callable[..., Any],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if invoicesync[server] were not installed
    result = invoicesync_cli("serve")
    assert result.exit_code == 2 and "pip install 'invoicesync[server]'" in result.output


def test_the_cli_starts_without_importing_the_server() -> None:
    import subprocess
    import sys

    code = "import sys, invoicesync.cli; print(any(m.startswith(('starlette', 'uvicorn')) for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"


def test_serve_takes_the_proxy_login_and_json_logs_without_password_users(
        invoicesync_cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    from invoicesync.logs import JsonFormatter
    from starlette.testclient import TestClient

    answers: dict[str, int] = {}

    def run(app: Any, **kwargs: Any) -> None:  # as uvicorn would serve it, while the home is open
        assert kwargs["proxy_headers"] is False  # the peer address stays the TCP peer's
        assert kwargs["log_config"] is None  # uvicorn's lines go through the JSON handler too
        for peer in ("10.3.4.5", "127.0.0.1"):
            with TestClient(app, base_url="http://127.0.0.1", client=(peer, 1234), follow_redirects=False) as client:
                answers[peer] = client.get("/sync", headers={"Remote-User": "carol"}).status_code

    monkeypatch.setattr(uvicorn, "run", run)
    root = logging.getLogger()
    handlers = root.handlers[:]
    try:
        result = invoicesync_cli("serve", "--log-format", "json", "--proxy-user-header", "Remote-User",
                                 "--trusted-proxy", "10.0.0.0/8")
        assert result.exit_code == 0, result.output
        assert root.handlers and all(isinstance(h.formatter, JsonFormatter) for h in root.handlers)
    finally:
        root.handlers[:] = handlers
    assert answers == {"10.3.4.5": 200, "127.0.0.1": 403}
