"""Plumbing shared by the source and target suites: loading the plugin under test, pointing an
account at its running sandbox without a prompt, and the "skip, but say why" rule."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from ...accounts import connect, connect_to_sandbox
from ...accounts import sandbox_settings as core_sandbox_settings
from ...context import UI, NonInteractiveUI, PluginKind
from ...models import Account, Document
from ...plugins import Plugins
from ...sandbox import RunningSandbox
from ...state import DocumentFilter
from ...workspace import Workspace


def load_plugins(name: str, kind: PluginKind, obj: Any | None) -> Plugins:
    """The plugin under test: the given object, or the installed entry point of that name."""
    if not name:
        raise pytest.UsageError("set `plugin = \"<entry-point name>\"` on your conformance class")
    plugins = Plugins.from_objects({name: (kind, obj)}) if obj is not None else Plugins.discover(only=[name])
    if name not in plugins.loaded:
        failure = next((f.error for f in plugins.failures if f.name == name), "it is not installed")
        pytest.fail(f"the {kind.value} plugin {name!r} could not be loaded: {failure}", pytrace=False)
    plugins.get(name, kind)
    return plugins


def sandbox_settings(plugins: Plugins, plugin: str, running: RunningSandbox | None,
                     extra: Mapping[str, Any]) -> dict[str, Any]:
    """Settings that point an account at the sandbox: the app's own, its CA when the plugin's
    settings take a ``ca_bundle``, then the suite's overrides (``settings = {...}``)."""
    settings = core_sandbox_settings(plugins, plugin, running) if running is not None else {}
    settings.update(extra)
    return settings


def connect_account(workspace: Workspace, plugin: str, name: str, settings: dict[str, Any],
                    running: RunningSandbox | None, ui: UI | None = None) -> Account:
    """Connect without a person: the sandbox's demo secrets first, then ``auth``, every company."""
    if running is not None:
        # The caller's settings already hold the sandbox's own (see sandbox_settings).
        return connect_to_sandbox(workspace, plugin, running, name=name, settings=settings, ui=ui)
    return connect(workspace, plugin, ui=ui or NonInteractiveUI(), name=name, settings=settings, companies=("*",))


def library(workspace: Workspace) -> dict[str, Document]:
    """The library, by source id."""
    return {d.source_id: d for d in workspace.state.find_documents(DocumentFilter())}


def skip_if_declared(skip_checks: Mapping[str, str], check: str) -> None:
    """Skip ``check`` when the suite declares it does not apply, which it must explain."""
    if check not in skip_checks:
        return
    reason = (skip_checks[check] or "").strip()
    if not reason:
        pytest.fail(f"skip_checks[{check!r}] needs a reason: say why this check does not apply", pytrace=False)
    pytest.skip(f"{check}: {reason}")
