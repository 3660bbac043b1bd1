"""Two worker processes find the same Billit access token expired at the same moment. Billit's
refresh tokens are single-use (the sandbox refuses a spent one, as Billit does): only one process
may refresh; the other must wait for it under the state's named lock, read the new token set and
go on with it. On a home's SQLite state and on a PostgreSQL state."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from invoicesync import Account, AccountDirection, PluginKind
from invoicesync.http import TokenSet
from invoicesync.plugins import Plugins
from invoicesync.sandbox import RunningSandbox
from invoicesync.state import LockTimeout
from invoicesync.workspace import Workspace
from invoicesync_billit import plugin as billit_plugin
from invoicesync_billit.sandbox import DEMO_CLIENT_SECRET, BillitSandbox

DRIVER = Path(__file__).with_name("limits_driver.py")


def _expired_login(app: BillitSandbox, workspace: Workspace, url: str) -> Account:
    account = Account(name="books", plugin="billit", direction=AccountDirection.IMPORT,
                      settings=app.oauth_settings(url), companies=[])
    workspace.state.save_account(account)
    secrets = workspace.secrets(account.name)
    secrets.set("client_secret", DEMO_CLIENT_SECRET)
    token = TokenSet.from_response(app.issue_login())
    secrets.set("oauth_token", token.model_copy(update={"expires_at": time.time() - 5}).model_dump_json())
    return account


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_two_processes_refreshing_at_once_spend_the_refresh_token_once(
        backend: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        workspace_factory: Callable[..., Workspace], serve_sandbox: Callable[..., RunningSandbox]) -> None:
    if backend == "postgres":
        monkeypatch.setenv("INVOICESYNC_STATE_URL", request.getfixturevalue("postgres_url"))
    app = BillitSandbox(documents=1, companies=1)
    server = serve_sandbox(app)
    workspace = workspace_factory(Plugins.from_objects({"billit": (PluginKind.SOURCE, billit_plugin)}))
    account = _expired_login(app, workspace, server.url)
    before = TokenSet.model_validate_json(workspace.secrets(account.name).get("oauth_token") or "")
    # A slow token endpoint: the second process asks while the first one's refresh is under way.
    app.add_fault({"action": "delay", "seconds": 1.0, "path": r"^/OAuth2/token$", "times": None})
    go = tmp_path / "go"
    workers = [subprocess.Popen([sys.executable, str(DRIVER), "refresh", account.name, str(go)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
               for _ in range(2)]
    go.touch()
    outcomes = [worker.communicate(timeout=60) for worker in workers]

    assert [worker.returncode for worker in workers] == [0, 0], [err[-2000:] for _, err in outcomes]
    assert [json.loads(out) for out, _ in outcomes] == [{"companies": 1}] * 2  # both went on working
    assert app.count("POST", r"^/OAuth2/token$") == 1
    assert app.oauth.refreshes == 1
    after = TokenSet.model_validate_json(workspace.secrets(account.name).get("oauth_token") or "")
    assert after.refresh_token in app.oauth.refresh_tokens  # the stored refresh token is the live one
    assert before.refresh_token in app.oauth.spent_refresh_tokens


def test_a_refresh_waits_for_the_lock_at_most_its_timeout(
        monkeypatch: pytest.MonkeyPatch, workspace_factory: Callable[..., Workspace],
        serve_sandbox: Callable[..., RunningSandbox]) -> None:
    """Another process holding the login's lock for good (stuck, not dead) fails the refresh in
    ``lock_timeout`` seconds with a clear error, and spends nothing."""
    from invoicesync_billit.auth import token_auth

    app = BillitSandbox(documents=1, companies=1)
    server = serve_sandbox(app)
    workspace = workspace_factory(Plugins.from_objects({"billit": (PluginKind.SOURCE, billit_plugin)}))
    account = _expired_login(app, workspace, server.url)
    ctx = workspace.context(account)
    auth = token_auth(ctx, workspace.settings_for(account))
    auth.lock_timeout = 0.3
    other = workspace_factory(Plugins.from_objects({"billit": (PluginKind.SOURCE, billit_plugin)}))
    with other.state.named_lock("secret books/oauth_token"), pytest.raises(LockTimeout, match="stayed taken"):
        auth.refresh()
    assert app.oauth.refreshes == 0
    ctx.close()
