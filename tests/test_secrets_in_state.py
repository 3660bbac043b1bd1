"""Workers on different machines — different homes — sharing one PostgreSQL state share its logins.

Billit's refresh tokens are single-use and rotate (the sandbox refuses a spent one, as Billit does).
With a token set per home, a worker whose neighbour refreshed still holds the spent refresh token
and loses the login on its next refresh. With the logins in the state (encrypted with each
machine's key), every worker refreshes with the live token, once per expiry, under the state's lock.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from invoicesync import Account, AccountDirection, PluginKind
from invoicesync.cli import cli
from invoicesync.errors import ConfigError
from invoicesync.http import TokenSet
from invoicesync.plugins import Plugins
from invoicesync.sandbox import RunningSandbox
from invoicesync.secrets import FileBackend
from invoicesync.secrets_key import KEY_REF, new_key
from invoicesync.workspace import Workspace
from invoicesync_billit import plugin as billit_plugin
from invoicesync_billit.sandbox import DEMO_CLIENT_SECRET, BillitSandbox

DRIVER = Path(__file__).with_name("limits_driver.py")
BILLIT = Plugins.from_objects({"billit": (PluginKind.SOURCE, billit_plugin)})


@pytest.fixture(autouse=True)
def _isolated(invoicesync_home: Path) -> None:
    """Secrets in 0600 files of the test's homes, never the developer's keyring; no stray config."""


def _cli(home: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--home", str(home), *args])
    return result.exit_code, result.output


def _login(home: Path, app: BillitSandbox, url: str, token: TokenSet) -> None:
    """What `connect` stores: the account, its client secret and a token set (here already expired)."""
    with Workspace.open(home, plugins=BILLIT) as workspace:
        workspace.state.save_account(Account(name="books", plugin="billit", direction=AccountDirection.IMPORT,
                                             settings=app.oauth_settings(url), companies=[]))
        secrets = workspace.secrets("books")
        secrets.set("client_secret", DEMO_CLIENT_SECRET)
        secrets.set("oauth_token", token.model_copy(update={"expires_at": time.time() - 5}).model_dump_json())


def _two_machines(tmp_path: Path, app: BillitSandbox, url: str) -> tuple[Path, Path, TokenSet]:
    """Homes A and B on one state, each logged in with the same token set; B got A's key."""
    home_a, home_b = tmp_path / "machine-a", tmp_path / "machine-b"
    token = TokenSet.from_response(app.issue_login())
    _login(home_a, app, url, token)
    code, output = _cli(home_a, "secrets", "key", "export", str(tmp_path / "key"))
    assert code == 0, output
    assert (tmp_path / "key").stat().st_mode & 0o777 == 0o600
    key_text = (tmp_path / "key").read_text().strip()
    assert key_text not in output  # written to the file, never printed
    assert _cli(home_b, "secrets", "key", "import", str(tmp_path / "key"))[0] == 0
    _login(home_b, app, url, token)  # logging in on B too (a copy of the same token set) is harmless
    return home_a, home_b, token


def _worker(home: Path, go: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(DRIVER), "refresh", "books", str(go)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "INVOICESYNC_HOME": str(home)})


def _finish(*workers: subprocess.Popen[str]) -> None:
    outcomes = [worker.communicate(timeout=60) for worker in workers]
    assert [worker.returncode for worker in workers] == [0] * len(workers), [err[-2000:] for _, err in outcomes]
    assert [json.loads(out) for out, _ in outcomes] == [{"companies": 1}] * len(workers)


def _assert_no_plaintext(url: str, *secrets: str, rows: int = 3) -> None:
    """Every row of every table of the state, as text, holds none of ``secrets``; the ``secrets``
    table holds ``rows`` rows (the two logins, and the row marking a key made for the state)."""
    with psycopg.connect(url) as db:
        tables = [row[0] for row in db.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")]
        assert "secrets" in tables
        dump = "\n".join(str(row[0]) for table in tables
                         for row in db.execute(f'SELECT t::text FROM "{table}" t'))
        assert db.execute("SELECT count(*) FROM secrets").fetchone() == (rows,)
    for secret in secrets:
        assert secret and secret not in dump


def test_a_worker_on_another_machine_refreshes_with_the_token_its_neighbour_rotated(
        tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch,
        serve_sandbox: Callable[..., RunningSandbox]) -> None:
    monkeypatch.setenv("INVOICESYNC_STATE_URL", postgres_url)
    app = BillitSandbox(documents=1, companies=1)
    server = serve_sandbox(app)
    home_a, home_b, first = _two_machines(tmp_path, app, server.url)
    go = tmp_path / "go"
    go.touch()

    _finish(_worker(home_a, go))  # A's access token had expired: A refreshes, spending the first refresh token
    assert app.oauth.refreshes == 1 and first.refresh_token in app.oauth.spent_refresh_tokens
    app.oauth.expire_all()  # later, the token A got expires too; B is next to notice
    _finish(_worker(home_b, go))

    assert app.oauth.refreshes == 2  # B refreshed with A's live refresh token, not the spent first one
    assert app.count("POST", r"^/OAuth2/token$") == 2  # and nothing was refused on the way
    with Workspace.open(home_b, plugins=BILLIT) as workspace:
        stored = TokenSet.model_validate_json(workspace.secrets("books").get("oauth_token") or "")
    assert stored.refresh_token in app.oauth.refresh_tokens  # the stored refresh token is the live one
    _assert_no_plaintext(postgres_url, DEMO_CLIENT_SECRET, first.access_token, first.refresh_token or "",
                         stored.access_token, stored.refresh_token or "", (tmp_path / "key").read_text().strip())


def test_workers_on_two_machines_refreshing_at_once_spend_the_refresh_token_once(
        tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch,
        serve_sandbox: Callable[..., RunningSandbox]) -> None:
    monkeypatch.setenv("INVOICESYNC_STATE_URL", postgres_url)
    app = BillitSandbox(documents=1, companies=1)
    server = serve_sandbox(app)
    home_a, home_b, _ = _two_machines(tmp_path, app, server.url)
    # B reads its key from a mounted file (a compose secret) rather than its home
    (home_b / "secrets.json").write_text("{}")
    monkeypatch.setenv("INVOICESYNC_SECRETS_KEY_FILE", str(tmp_path / "key"))
    # A slow token endpoint: the second worker asks while the first one's refresh is under way.
    app.add_fault({"action": "delay", "seconds": 1.0, "path": r"^/OAuth2/token$", "times": None})
    go = tmp_path / "go"
    workers = [_worker(home_a, go), _worker(home_b, go)]
    go.touch()
    _finish(*workers)

    assert app.count("POST", r"^/OAuth2/token$") == 1
    assert app.oauth.refreshes == 1


def test_a_machine_without_the_key_gets_one_clear_line_saying_what_to_do(
        tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch,
        serve_sandbox: Callable[..., RunningSandbox]) -> None:
    monkeypatch.setenv("INVOICESYNC_STATE_URL", postgres_url)
    app = BillitSandbox(documents=1, companies=1)
    server = serve_sandbox(app)
    _login(tmp_path / "machine-a", app, server.url, TokenSet.from_response(app.issue_login()))

    with Workspace.open(tmp_path / "machine-c", plugins=BILLIT) as workspace:
        with pytest.raises(ConfigError) as missing:
            workspace.secrets("books").get("oauth_token")
        with pytest.raises(ConfigError):  # nor may it write: nobody else could read that
            workspace.secrets("books").set("api_key", "a-key-nobody-could-read")
    message = str(missing.value)
    assert "\n" not in message and "no key" in message
    assert "`invoicesync secrets key export FILE`" in message and "`invoicesync secrets key import FILE`" in message

    FileBackend(tmp_path / "machine-d" / "secrets.json").set(KEY_REF, new_key())
    wrong = r"encrypted with key \w{12}, but this machine's key .* is \w{12}: import the right one"
    with Workspace.open(tmp_path / "machine-d", plugins=BILLIT) as workspace:
        with pytest.raises(ConfigError, match=wrong):
            workspace.secrets("books").get("oauth_token")
        with pytest.raises(ConfigError, match=wrong):  # rows under two keys: nobody could read them all
            workspace.secrets("books").set("api_key", "a-key-only-machine-d-could-read")

    monkeypatch.setenv("INVOICESYNC_SECRETS_KEY_FILE", str(tmp_path / "not-mounted"))
    with Workspace.open(tmp_path / "machine-e", plugins=BILLIT) as workspace, \
            pytest.raises(ConfigError, match=r"INVOICESYNC_SECRETS_KEY_FILE=.*cannot be read"):
        workspace.secrets("books").get("oauth_token")


def test_state_migrate_moves_the_homes_logins_into_the_state(
        tmp_path: Path, postgres_url: str, invoicesync_home: Path, monkeypatch: pytest.MonkeyPatch,
        serve_sandbox: Callable[..., RunningSandbox]) -> None:
    app = BillitSandbox(documents=1, companies=1)
    server = serve_sandbox(app)
    token = TokenSet.from_response(app.issue_login())
    _login(invoicesync_home, app, server.url, token)  # the SQLite default: logins in the home's secrets.json
    with Workspace.open(invoicesync_home, plugins=BILLIT) as workspace:
        assert isinstance(workspace.secret_backend, FileBackend)
    assert "books/oauth_token" in json.loads((invoicesync_home / "secrets.json").read_text())

    # as in deploy/compose.yaml: the state's URL and the key file are set for every command
    code, output = _cli(invoicesync_home, "secrets", "key", "new", str(tmp_path / "key"))
    assert code == 0 and (tmp_path / "key").read_text().strip() not in output, output
    monkeypatch.setenv("INVOICESYNC_STATE_URL", postgres_url)
    monkeypatch.setenv("INVOICESYNC_SECRETS_KEY_FILE", str(tmp_path / "key"))
    code, output = _cli(invoicesync_home, "state", "migrate", "--to", postgres_url)
    assert code == 0, output
    assert "secrets: 2" in output

    with Workspace.open(tmp_path / "worker", plugins=BILLIT) as workspace:  # another machine, with the key only
        stored = TokenSet.model_validate_json(workspace.secrets("books").get("oauth_token") or "")
        assert stored.refresh_token == token.refresh_token
        assert workspace.secrets("books").get("client_secret") == DEMO_CLIENT_SECRET
    # no key was made here (the key file's was): the two logins only
    _assert_no_plaintext(postgres_url, DEMO_CLIENT_SECRET, token.access_token, token.refresh_token or "",
                         (tmp_path / "key").read_text().strip(), rows=2)
    # `secrets migrate` (for a home whose state moved some other way) copies the same logins again
    assert _cli(invoicesync_home, "secrets", "migrate")[1].startswith("Copied 2 secret(s)")


def test_a_key_redacts_its_material_but_not_the_word_invoicesync() -> None:
    from invoicesync.secrets import redact
    from invoicesync.secrets_key import new_key, parse_key

    text = new_key()
    parse_key(text, "a key file")
    material = text.split(":", 1)[1]
    assert redact(f"logger invoicesync.server; key {material}") == "logger invoicesync.server; key ***"
