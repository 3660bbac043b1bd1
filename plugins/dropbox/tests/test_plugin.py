"""The plugin as installed: entry point, settings validation, the sandbox hook, end to end."""

from __future__ import annotations

from typing import Any

import pytest
from invoicesync import PluginKind
from invoicesync.plugins import Plugins
from invoicesync_dropbox.sandbox import DropboxSandbox
from invoicesync_dropbox.settings import DropboxSettings
from pydantic import ValidationError


def test_entry_point_loads_as_a_target() -> None:
    plugins = Plugins.discover(only=["dropbox"])
    loaded = plugins.get("dropbox", PluginKind.TARGET)
    assert loaded.info.settings is DropboxSettings
    assert loaded.info.secrets == ("oauth_token",)
    assert {"auth", "push_documents", "sandbox"} <= set(loaded.hooks)
    assert loaded.distribution == "invoicesync-dropbox"


def test_sandbox_hook_returns_a_configured_sandbox() -> None:
    plugins = Plugins.discover(only=["dropbox"])
    app = plugins.call("dropbox", "sandbox", options={"documents": 5, "seed": 1, "write_limit": 2})
    assert isinstance(app, DropboxSandbox) and app.namespace.write_limit == 2
    settings = DropboxSettings.model_validate(app.account_settings("http://127.0.0.1:1"))
    assert settings.api_url == settings.content_url == "http://127.0.0.1:1"
    assert "refresh_token" in app.account_secrets()["oauth_token"]


@pytest.mark.parametrize("bad", [
    {"chunk_size": 5 * 1024 * 1024},
    {"upload_threshold": 151 * 1024 * 1024},
    {"template": "/Invoices/{nonsense}.pdf"},
    {"template": "/Invoices/../{number}.pdf"},
    {"on_change": "duplicate"},
    {"typo_setting": 1},
])
def test_bad_settings_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        DropboxSettings.model_validate(bad)


def test_defaults() -> None:
    settings = DropboxSettings()
    assert settings.scopes == "files.content.write files.metadata.read"
    assert settings.template.startswith("/Invoices/{company}/{year}/{direction}/")
    assert settings.upload_threshold == 8 * 1024 * 1024 and settings.on_change == "keep_both"
