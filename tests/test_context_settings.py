"""``ctx.settings_as(Model)``: a plugin's typed view of its account settings, validated at most once."""

from __future__ import annotations

from pathlib import Path

import pytest
from invoicesync import Settings
from invoicesync.builtins import localfs
from invoicesync.context import Context, PluginKind
from invoicesync.errors import ConfigError
from invoicesync.models import Account, AccountDirection
from invoicesync.plugins import Plugins
from invoicesync.workspace import Workspace
from pydantic import Field


class ShopSettings(Settings):
    base_url: str = "https://api.example.com"
    page_size: int = Field(50, ge=1)


class OtherSettings(Settings):
    folder: str


def make_context(settings: object) -> Context:
    account = Account(name="shop", plugin="svc", direction=AccountDirection.IMPORT)
    return Context(account=account, settings=settings, secrets=None, blobs=None, kv=None)  # type: ignore[arg-type]


def test_settings_the_runner_validated_come_back_as_they_are() -> None:
    settings = ShopSettings(page_size=5)
    ctx = make_context(settings)
    typed = ctx.settings_as(ShopSettings)
    assert typed is settings
    assert typed.page_size == 5


def test_plain_values_are_validated_once_and_a_reassigned_settings_is_read_anew() -> None:
    ctx = make_context({"page_size": "7"})
    first = ctx.settings_as(ShopSettings)
    assert isinstance(first, ShopSettings) and first.page_size == 7
    assert ctx.settings_as(ShopSettings) is first  # cached, not validated again
    ctx.settings = {"page_size": 9}  # a test swapping the settings mid-way sees the new ones
    assert ctx.settings_as(ShopSettings).page_size == 9


def test_settings_that_do_not_fit_the_model_are_a_config_error_naming_the_field() -> None:
    ctx = make_context(ShopSettings())
    with pytest.raises(ConfigError) as caught:
        ctx.settings_as(OtherSettings)
    assert "OtherSettings" in str(caught.value) and "folder" in str(caught.value)
    with pytest.raises(ConfigError, match="page_size"):
        make_context({"page_size": 0}).settings_as(ShopSettings)


def test_a_workspace_context_hands_the_plugin_its_own_model(tmp_path: Path) -> None:
    plugins = Plugins.from_objects({"localfs": (PluginKind.TARGET, localfs)})
    account = Account(name="files", plugin="localfs", direction=AccountDirection.EXPORT,
                      settings={"root": str(tmp_path / "out")})
    with Workspace.open(tmp_path / "home", plugins=plugins) as workspace:
        ctx = workspace.context(account)
        typed = ctx.settings_as(localfs.LocalFsSettings)
        assert typed is ctx.settings  # already validated by the runner: no second validation
        assert typed.root == tmp_path / "out"
