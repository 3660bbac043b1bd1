"""Secrets never reach stdout, stderr, logs, error messages, the state DB or the config file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from invoicesync import Account, Company, Context, DocumentError, PluginInfo, PluginKind, hookimpl
from invoicesync.cli import cli
from invoicesync.plugins import Plugins
from invoicesync.secrets import AccountSecrets, FileBackend
from invoicesync.testing import MemorySource, MemoryTarget

SECRET = "sk-live-5f1d8c0e9a7b4c21"


class LeakySource(MemorySource):
    """Does everything a careless plugin might: logs the key, puts it in an error message."""

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(kind=PluginKind.SOURCE, title="Leaky", api_version=(1, 1), secrets=("api_key",))

    @hookimpl
    def auth(self, account: Account, ctx: Context) -> list[Company]:
        key = ctx.ui.prompt("API key", secret=True, default=None) if ctx.ui.interactive else SECRET
        ctx.secrets.set("api_key", key)
        ctx.log.warning("logged in with key %s", key)
        return super().auth(account, ctx)

    @hookimpl
    def fetch_document(self, account, company, ref, ctx):  # type: ignore[no-untyped-def]
        key = ctx.secrets.get("api_key")
        ctx.log.error("fetching %s with %s", ref.source_id, key)
        raise DocumentError(f"server said: key {key} is not allowed", document=ref.source_id, field="ApiKey")


@pytest.fixture
def leaky(invoicesync_home: Path) -> Plugins:
    return Plugins.from_objects({"leaky": (PluginKind.SOURCE, LeakySource(3)),
                                 "memtarget": (PluginKind.TARGET, MemoryTarget())})


def test_a_secret_appears_nowhere_but_the_0600_store(leaky: Plugins, invoicesync_home: Path) -> None:
    runner = CliRunner()
    outputs = []
    for args in (["-vv", "connect", "leaky"], ["-vv", "connect", "memtarget"], ["-vv", "sync"],
                 ["sync", "--json"], ["accounts", "--json"], ["documents", "--json"]):
        result = runner.invoke(cli, args, catch_exceptions=False, obj=leaky)
        outputs.append(result.output + (result.stderr if result.stderr_bytes is not None else ""))
    everything = "\n".join(outputs)
    assert "fetching m0 with ***" in everything  # the log line is there, the key is not
    assert "key *** is not allowed" in everything
    assert SECRET not in everything
    for path in invoicesync_home.rglob("*"):
        if path.is_file() and path.name != "secrets.json":
            assert SECRET.encode() not in path.read_bytes(), f"secret leaked into {path}"
    store = invoicesync_home / "secrets.json"
    assert SECRET in store.read_text()
    assert stat.S_IMODE(os.stat(store).st_mode) == 0o600


def test_a_secret_in_the_config_file_is_refused_without_echoing_it(leaky: Plugins, tmp_path: Path) -> None:
    config = tmp_path / "invoicesync.toml"
    config.write_text(f'[accounts.x]\nplugin = "leaky"\n[accounts.x.settings]\napi_key = "{SECRET}"\n')
    result = CliRunner().invoke(cli, ["--config", str(config), "accounts"], obj=leaky)
    assert result.exit_code == 2
    assert "api_key is a secret and does not belong in the config file" in result.output
    assert "INVOICESYNC_X_API_KEY" in result.output and SECRET not in result.output


def test_environment_variables_win_and_file_is_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = AccountSecrets(FileBackend(tmp_path / "s.json"), "my-acct")
    secrets.set("api_key", "stored-value-1234")
    assert secrets.get("api_key") == "stored-value-1234"
    monkeypatch.setenv("INVOICESYNC_MY_ACCT_API_KEY", "from-env-5678")
    assert secrets.get("api_key") == "from-env-5678"
    assert stat.S_IMODE(os.stat(tmp_path / "s.json").st_mode) == 0o600
