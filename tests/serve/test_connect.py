"""+ Import / + Export: a form made from the plugin's settings model; key logins connect here,
browser logins (OAuth) are sent to the CLI; several companies get a checklist."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from invoicesync import PluginKind, hookimpl
from invoicesync.context import Context, PluginInfo, Settings
from invoicesync.models import Account, Company, Document, DocumentRef

from .conftest import Dashboard

COMPANIES = [Company(id="p1", name="North BV"), Company(id="p2", name="South NV"), Company(id="p3", name="East SA")]


class KeySettings(Settings):
    region: str = "eu"


class ListsNothing:
    @hookimpl
    def list_documents(self, account: Account, company: Company, cursor: str | None, ctx: Context) -> Iterator[Any]:
        yield from ()

    @hookimpl
    def fetch_document(self, account: Account, company: Company, ref: DocumentRef, ctx: Context) -> Document:
        raise AssertionError("nothing is listed")


class KeySource(ListsNothing):
    """Logs in with an API key from the secret store; reaches three companies."""

    seen_key: str | None = None

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(kind=PluginKind.SOURCE, title="Key source", settings=KeySettings, secrets=("api_key",),
                          api_version=(1, 2))

    @hookimpl
    def auth(self, account: Account, ctx: Context) -> list[Company]:
        self.seen_key = ctx.secrets.get("api_key") or ctx.ui.prompt("API key", secret=True)
        return COMPANIES


class OAuthSource(ListsNothing):
    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(kind=PluginKind.SOURCE, title="OAuth source", api_version=(1, 2))

    @hookimpl
    def auth(self, account: Account, ctx: Context) -> list[Company]:
        ctx.ui.open_url("https://login.example/authorize")
        return []


def with_plugins(admin: Dashboard) -> KeySource:
    key = KeySource()
    admin.workspace.plugins.register("keysource", key, kind=PluginKind.SOURCE)
    admin.workspace.plugins.register("oauthsource", OAuthSource(), kind=PluginKind.SOURCE)
    return key


def test_the_plugin_lists_show_installed_plugins_by_direction(admin: Dashboard) -> None:
    with_plugins(admin)
    imports = admin.client.get("/connect/import").text
    exports = admin.client.get("/connect/export").text
    assert "/connect/import/keysource" in imports and "/connect/import/memtarget" not in imports
    assert "/connect/export/localfs" in exports and "Local folder" in exports
    assert admin.client.get("/connect/sideways").status_code == 404
    assert admin.client.get("/connect/import/localfs").status_code == 404  # a target is no import


def test_the_form_is_made_from_the_settings_model(admin: Dashboard) -> None:
    page = admin.client.get("/connect/export/localfs").text
    assert 'name="root" value="" required' in page
    assert '<select name="on_change"><option value="overwrite" selected>' in page
    assert 'type="checkbox" name="write_data" checked' in page


def test_a_key_target_connects_and_a_missing_setting_is_shown_beside_its_input(
        admin: Dashboard, tmp_path: Path) -> None:
    refused = admin.post("/connect/export/localfs", {"name": "archive"})
    assert refused.status_code == 400  # type: ignore[attr-defined]
    assert 'class="invalid"' in refused.text  # type: ignore[attr-defined]
    response = admin.post("/connect/export/localfs", {"name": "archive", "root": str(tmp_path / "out"),
                                                      "on_change": "skip"})
    assert response.status_code == 303  # type: ignore[attr-defined]
    account = admin.workspace.state.get_account("archive")
    assert account is not None and account.settings["root"] == str(tmp_path / "out")
    assert account.settings["on_change"] == "skip" and account.settings["write_data"] is False


def test_several_companies_get_a_checklist_and_the_secret_is_kept_not_shown(admin: Dashboard) -> None:
    source = with_plugins(admin)
    first = admin.post("/connect/import/keysource", {"name": "books", "api_key": "k-123456", "region": "us"})
    assert first.status_code == 200  # type: ignore[attr-defined]
    page: str = first.text  # type: ignore[attr-defined]
    assert 'name="company" value="p2"' in page and "k-123456" not in page and 'value="us"' in page
    assert admin.workspace.state.get_account("books") is None  # not connected before the choice
    second = admin.post("/connect/import/keysource", {"name": "books", "region": "us", "step": "companies",
                                                      "company": "p2"})
    assert second.status_code == 303  # type: ignore[attr-defined]
    account = admin.workspace.state.get_account("books")
    assert account is not None and [c.id for c in account.companies] == ["p2"]
    assert source.seen_key == "k-123456" and admin.workspace.secrets("books").get("api_key") == "k-123456"
    assert "k-123456" not in str(account.settings)


def test_a_browser_login_is_sent_to_the_cli(admin: Dashboard) -> None:
    with_plugins(admin)
    response = admin.post("/connect/import/oauthsource", {"name": "billing"})
    page: str = response.text  # type: ignore[attr-defined]
    assert response.status_code == 400  # type: ignore[attr-defined]
    assert "OAuth" in page and "invoicesync connect oauthsource --name billing" in page
    assert admin.workspace.state.get_account("billing") is None


def test_a_login_that_prompts_is_sent_to_the_cli_too(admin: Dashboard) -> None:
    with_plugins(admin)
    response = admin.post("/connect/import/keysource", {"name": "nokey"})
    assert response.status_code == 400  # type: ignore[attr-defined]
    assert "it asked: API key" in response.text  # type: ignore[attr-defined]


def test_a_bad_account_name_is_refused_before_anything_is_kept(admin: Dashboard) -> None:
    with_plugins(admin)
    response = admin.post("/connect/import/keysource", {"name": "../etc", "api_key": "k-999999"})
    assert response.status_code == 400  # type: ignore[attr-defined]
    assert admin.workspace.secrets("../etc").get("api_key") is None




def test_an_export_takes_the_cores_export_options_beside_the_plugins_settings(admin: Dashboard,
                                                                              tmp_path: Path) -> None:
    page = admin.client.get("/connect/export/localfs").text
    assert 'type="date" name="since"' in page and 'name="files"' in page
    assert 'name="since"' not in admin.client.get("/connect/import/memory").text  # a source has none
    root = str(tmp_path / "out")
    refused = admin.post("/connect/export/localfs", {"name": "pdfs", "root": root, "since": "2026-02-01",
                                                     "until": "2026-01-01"})
    assert refused.status_code == 400 and "is after until" in refused.text  # type: ignore[attr-defined]
    assert admin.workspace.state.get_account("pdfs") is None
    response = admin.post("/connect/export/localfs", {"name": "pdfs", "root": root, "files": "pdf",
                                                      "since": "2025-01-01", "kinds": ""})
    assert response.status_code == 303  # type: ignore[attr-defined]
    account = admin.workspace.state.get_account("pdfs")
    assert account is not None and account.settings["files"] == "pdf" and account.settings["since"] == "2025-01-01"
    assert "kinds" not in account.settings


def test_billits_oauth_login_is_sent_to_the_cli_and_its_api_key_login_connects(
        workspace_factory: Any, serve_sandbox: Any) -> None:
    from invoicesync.plugins import Plugins
    from invoicesync.server import Users, create_app
    from starlette.testclient import TestClient

    from .conftest import ADMIN, PASSWORD

    workspace = workspace_factory(plugins=Plugins.discover(["billit"]))
    Users(workspace.home).add(ADMIN, PASSWORD)
    with TestClient(create_app(workspace, allowed_hosts=["testserver"])) as client:
        admin = Dashboard(client, workspace)
        admin.login()
        oauth = admin.post("/connect/import/billit", {"name": "billit", "auth": "oauth"})
        assert oauth.status_code == 400  # type: ignore[attr-defined]
        assert "invoicesync connect billit --name billit" in oauth.text  # type: ignore[attr-defined]
        app = workspace.plugins.call("billit", "sandbox", options={"documents": 2, "seed": 1})
        running = serve_sandbox(app, tls=getattr(app, "tls", False), tls_dir=workspace.home / "ca")
        settings = {k: str(v) for k, v in app.account_settings(running.url).items()}
        if running.ca_file:
            settings["ca_bundle"] = str(running.ca_file)
        key = app.account_secrets()["api_key"]
        first = admin.post("/connect/import/billit", {"name": "books", **settings, "auth": "api_key",
                                                      "api_key": key})
        options = re.findall(r'name="company" value="([^"]+)"', first.text)  # type: ignore[attr-defined]
        assert len(options) >= 2 and key not in first.text  # type: ignore[attr-defined]
        second = admin.post("/connect/import/billit", {"name": "books", **settings, "auth": "api_key",
                                                       "step": "companies", "company": options[0]})
        assert second.status_code == 303, second.text  # type: ignore[attr-defined]
        account = workspace.state.get_account("books")
        assert account is not None and [c.id for c in account.companies] == [options[0]]
