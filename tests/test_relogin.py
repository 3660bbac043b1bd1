"""The relogin command every dead login names (`connect PLUGIN --name NAME --relogin`): it works for
accounts declared in invoicesync.toml, keeps the chosen companies, and `connect --help` shows it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from invoicesync import Company, ConfigError, PluginKind
from invoicesync.accounts import connect
from invoicesync.context import Context, PluginInfo, Settings
from invoicesync.hookspecs import hookimpl
from invoicesync.http import keep_or_login
from invoicesync.models import Account
from invoicesync.plugins import Plugins
from invoicesync.testing import MemorySource, ScriptedUI
from invoicesync.workspace import Workspace

COMPANIES = [Company(id="1", name="Acme BV"), Company(id="2", name="Beta NV"), Company(id="3", name="Gamma BV")]


class BooksSettings(Settings):
    region: str = "eu"


class LoginSource(MemorySource):
    """A source with an OAuth-like login (core's ``keep_or_login``): counts real logins."""

    def __init__(self) -> None:
        super().__init__()
        self.logins = 0
        self.seen_regions: list[str] = []

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(kind=PluginKind.SOURCE, title="Books", settings=BooksSettings, api_version=(1, 2))

    @hookimpl
    def auth(self, account: Account, ctx: Context) -> list[Company]:
        def login() -> None:
            self.logins += 1
            ctx.secrets.set("oauth_token", f"token-{self.logins}")

        self.seen_regions.append(ctx.settings.region)
        return keep_or_login(ctx, service="Books", token_key="oauth_token", login=login,
                             verify=lambda: list(COMPANIES))


class CountingUI(ScriptedUI):
    def __init__(self, choices: Sequence[str]) -> None:
        super().__init__(choices=choices)
        self.checklists = 0

    def choose(self, text: str, options: Sequence[tuple[str, str]], *, multiple: bool) -> list[str]:
        self.checklists += 1
        return super().choose(text, options, multiple=multiple)


@pytest.fixture
def books() -> tuple[Plugins, LoginSource]:
    source = LoginSource()
    return Plugins.from_objects({"books": (PluginKind.SOURCE, source)}), source


def test_a_relogin_keeps_the_chosen_companies_and_the_checklist_comes_back_only_when_asked(
        workspace_factory: Any, books: tuple[Plugins, LoginSource]) -> None:
    plugins, source = books
    workspace: Workspace = workspace_factory(plugins=plugins)
    first = CountingUI(choices=["1", "3"])
    connect(workspace, "books", ui=first, name="acme")
    assert first.checklists == 1 and source.logins == 1

    again = CountingUI(choices=["2"])
    account = connect(workspace, "books", ui=again, name="acme", options={"relogin": True})
    assert source.logins == 2  # logged in again ...
    assert again.checklists == 0  # ... without the checklist
    assert [c.id for c in account.companies] == ["1", "3"]
    assert [c.id for c in workspace.account("acme").companies] == ["1", "3"]

    asked = CountingUI(choices=["2"])
    account = connect(workspace, "books", ui=asked, name="acme", choose_again=True)
    assert asked.checklists == 1 and [c.id for c in account.companies] == ["2"]


def test_relogin_over_the_cli_keeps_the_companies_without_a_terminal(
        invoicesync_cli: Any, books: tuple[Plugins, LoginSource]) -> None:
    plugins, source = books
    assert invoicesync_cli("connect", "books", "--name", "acme", "--company", "1", "--company", "3",
                           plugins=plugins).exit_code == 0
    result: Result = invoicesync_cli("connect", "books", "--name", "acme", "--relogin", plugins=plugins)
    assert result.exit_code == 0, result.output
    assert source.logins == 2
    assert "Acme BV (1), Gamma BV (3)" in result.output

    listing = invoicesync_cli("accounts", "--json", plugins=plugins)
    assert [c["id"] for c in _row(listing, "acme")["companies"]] == ["1", "3"]


def test_a_relogin_for_an_account_that_does_not_exist_is_refused(
        invoicesync_cli: Any, books: tuple[Plugins, LoginSource]) -> None:
    plugins, source = books
    result = invoicesync_cli("connect", "books", "--name", "acem", "--relogin", plugins=plugins)
    assert result.exit_code == 2, result.output
    assert "no account called 'acem'" in result.output and source.logins == 0


def test_a_kept_company_the_new_login_cannot_reach_is_an_error_naming_the_fix(
        workspace_factory: Any, books: tuple[Plugins, LoginSource]) -> None:
    plugins, _ = books
    workspace: Workspace = workspace_factory(plugins=plugins)
    connect(workspace, "books", ui=CountingUI(choices=["1", "3"]), name="acme")
    COMPANIES.pop()
    try:
        with pytest.raises(ConfigError, match=r"cannot reach 3 \(Gamma BV\).*connect books --name acme --companies"):
            connect(workspace, "books", ui=CountingUI(choices=[]), name="acme", options={"relogin": True})
    finally:
        COMPANIES.append(Company(id="3", name="Gamma BV"))


def test_relogin_works_for_an_account_declared_in_the_toml(
        invoicesync_cli: Any, books: tuple[Plugins, LoginSource], invoicesync_home: Path, tmp_path: Path) -> None:
    plugins, source = books
    (tmp_path / "invoicesync.toml").write_text(
        '[accounts.acme]\nplugin = "books"\ncompanies = ["2"]\n[accounts.acme.settings]\nregion = "us"\n')
    result = invoicesync_cli("connect", "books", "--name", "acme", "--relogin", plugins=plugins)
    assert result.exit_code == 0, result.output
    assert source.logins == 1 and source.seen_regions == ["us"]  # logged in with the TOML's settings
    assert "stay in" in result.output and "invoicesync.toml" in result.output

    from invoicesync.secrets import AccountSecrets, choose_backend

    assert AccountSecrets(choose_backend(invoicesync_home), "acme").get("oauth_token") == "token-1"

    row = _row(invoicesync_cli("accounts", "--json", plugins=plugins), "acme")
    assert row["origin"] == "config" and [c["id"] for c in row["companies"]] == ["2"]  # TOML untouched
    with Workspace.open(invoicesync_home, plugins=plugins) as workspace:
        assert workspace.state.get_account("acme") is None  # nothing copied out of the TOML

    refused = invoicesync_cli("connect", "books", "--name", "acme", "--region", "ap", plugins=plugins)
    assert refused.exit_code == 2 and "takes its settings from" in refused.output
    refused = invoicesync_cli("connect", "books", "--name", "acme", "--company", "1", plugins=plugins)
    assert refused.exit_code == 2 and "takes its companies from" in refused.output


def test_connect_help_names_relogin_and_the_checklist_flag(invoicesync_cli: Any) -> None:
    result = invoicesync_cli("connect", "--help")
    assert result.exit_code == 0
    assert "--relogin" in result.output and "--companies" in result.output


def _row(result: Result, name: str) -> dict[str, Any]:
    import json

    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return next(r for r in rows if r["name"] == name)
