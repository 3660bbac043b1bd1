"""Finding, loading and calling plugins.

Discovery is stevedore over two entry-point groups, ``invoicesync.sources`` and
``invoicesync.targets``: one name, one plugin (stevedore's *driver* pattern). Each entry point
loads under its own guard, so one broken plugin is reported and skipped while the rest work.

Each loaded plugin is registered into one pluggy manager under its entry-point name. Hooks are
then *routed*: ``Plugins.call("billit", "list_documents", ...)`` calls billit's implementation
only, through ``pm.subset_hook_caller``. Why not broadcast and let plugins return ``None`` when
the account is not theirs? Because then every plugin must remember to check, a forgotten check
silently answers for another service, and a hook that yields would start every plugin's generator.
Routing keeps pluggy's argument matching and tracing while making the one-plugin rule structural.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any

import pluggy
from pydantic import ValidationError

from . import hookspecs
from .context import PluginInfo, PluginKind
from .errors import PluginError

if TYPE_CHECKING:
    from stevedore import ExtensionManager

log = logging.getLogger("invoicesync.plugins")

GROUPS = {PluginKind.SOURCE: "invoicesync.sources", PluginKind.TARGET: "invoicesync.targets"}
#: Hooks called on every plugin rather than routed to one.
BROADCAST_HOOKS = frozenset({"register_commands"})


@dataclass
class LoadedPlugin:
    name: str
    kind: PluginKind
    info: PluginInfo
    module: Any
    hooks: list[str] = field(default_factory=list)
    entry_point: Any = field(default=None, repr=False)

    # Found when first asked (``invoicesync plugins``), not at load: finding a package's
    # distribution reads every installed distribution's metadata, a sixth of a second that a
    # sync (which never asks) would pay on every start.
    @functools.cached_property
    def _dist(self) -> tuple[str | None, str | None]:
        return _distribution(self.entry_point)

    @property
    def distribution(self) -> str | None:
        return self._dist[0]

    @property
    def version(self) -> str | None:
        return self._dist[1]


@dataclass
class LoadFailure:
    name: str
    group: str
    error: str


class Plugins:
    """The installed plugins, loaded once; ``call`` routes a hook to one of them."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("invoicesync")
        self.pm.add_hookspecs(hookspecs)
        self._loaded: dict[str, LoadedPlugin] = {}
        self._failures: list[LoadFailure] = []
        self._callers: dict[tuple[str, str], Any] = {}
        #: Entry points not imported yet (``discover(lazy=True)``): name -> [(kind, entry point)].
        self._pending: dict[str, list[tuple[PluginKind, metadata.EntryPoint]]] = {}
        self._loading = threading.RLock()
        self._commands_registered = False
        if os.environ.get("INVOICESYNC_TRACE_PLUGINS"):
            self.pm.trace.root.setwriter(lambda text: sys.stderr.write(text))
            self.pm.enable_tracing()

    # -- loading -----------------------------------------------------------------------------

    @property
    def loaded(self) -> dict[str, LoadedPlugin]:
        """Every plugin that loaded (importing the ones not asked for yet)."""
        self.load_all()
        return self._loaded

    @property
    def failures(self) -> list[LoadFailure]:
        """Every plugin that failed to load (importing the ones not asked for yet)."""
        self.load_all()
        return self._failures

    @classmethod
    def discover(cls, only: Iterable[str] | None = None, *, lazy: bool = False) -> Plugins:
        """Load every installed plugin. ``INVOICESYNC_LOAD_PLUGINS=a,b`` limits loading to those
        names (empty: none), like ``LLM_LOAD_PLUGINS``.

        ``lazy``: read the entry points now, import each plugin when it is first asked for by name
        (``get``, ``call``): a sync of Billit into Dropbox then never imports the Drive or Business
        Central plugins and what they import (google auth, msal). Whatever needs them all
        (``loaded``, ``failures``, ``of_kind``, ``load_all``) imports the rest."""
        plugins = cls()
        allowed = set(only) if only is not None else _env_allow_list()
        if lazy:
            # One read of every distribution's entry points for all groups (a read per group costs
            # as much again: ~0.02 CPU s with a couple of hundred packages installed).
            found = metadata.entry_points()
            for kind, group in GROUPS.items():  # sources first, as the eager path registers them
                for entry_point in found.select(group=group):
                    if allowed is None or entry_point.name in allowed:
                        plugins._pending.setdefault(entry_point.name, []).append((kind, entry_point))
            return plugins
        # Only the eager path uses stevedore: a sync (lazy) never imports it.
        from stevedore import ExtensionManager, NamedExtensionManager

        for kind, group in GROUPS.items():
            # Named loading imports only the allowed names; the others are never imported.
            manager: ExtensionManager[Any] = (
                ExtensionManager(namespace=group, on_load_failure_callback=plugins._on_load_failure)
                if allowed is None else
                NamedExtensionManager(namespace=group, names=sorted(allowed), on_missing_entrypoints_callback=_ignore,
                                      on_load_failure_callback=plugins._on_load_failure)
            )
            for extension in manager:
                plugins.register(extension.name, extension.plugin, kind=kind, entry_point=extension.entry_point)
        return plugins

    @classmethod
    def installed(cls) -> Plugins:
        """The installed plugins, discovered now (lazily: each is imported when first asked for).

        There is no process-wide instance: whoever needs plugins holds a ``Plugins`` and passes it
        on (the CLI keeps one per process at its edge, ``cli._common.default_plugins``; a
        ``Workspace`` holds the one it was opened with), so tests hand in ``from_objects`` instead
        of swapping a global."""
        return cls.discover(lazy=True)

    def load_all(self) -> None:
        """Import every plugin not imported yet."""
        if self._pending:
            with self._loading:
                for name in list(self._pending):
                    self._load(name)

    def _load(self, name: str) -> None:
        # The entry point leaves ``_pending`` before its import ends: a thread asking for the same
        # name meanwhile must wait here for the import (see ``get``), not look while it runs.
        with self._loading:
            for kind, entry_point in self._pending.pop(name, []):
                try:
                    obj = entry_point.load()
                except Exception as error:  # noqa: BLE001 - one broken plugin is reported and skipped
                    self._failures.append(LoadFailure(name, GROUPS[kind], f"{type(error).__name__}: {error}"))
                    log.warning("plugin %s (%s) failed to load and was skipped: %s", name, GROUPS[kind], error)
                    continue
                self.register(name, obj, kind=kind, entry_point=entry_point)

    @classmethod
    def from_objects(cls, objects: dict[str, tuple[PluginKind, Any]]) -> Plugins:
        """An in-memory set of plugins, no entry points involved (stevedore's ``make_test_instance``)."""
        plugins = cls()
        for name, (kind, obj) in objects.items():
            plugins.register(name, obj, kind=kind)
        return plugins

    def _on_load_failure(self, manager: ExtensionManager, entry_point: Any, error: BaseException) -> None:
        group = getattr(manager, "namespace", "?")
        self._failures.append(LoadFailure(entry_point.name, group, f"{type(error).__name__}: {error}"))
        log.warning("plugin %s (%s) failed to load and was skipped: %s", entry_point.name, group, error)

    def register(self, name: str, obj: Any, *, kind: PluginKind, entry_point: Any = None) -> LoadedPlugin | None:
        """Register one plugin object under ``name``; record a failure instead of raising."""
        group = GROUPS[kind]
        try:
            loaded = self._register(name, obj, kind, entry_point)
        except Exception as exc:  # noqa: BLE001 - a broken plugin must never break the others
            if self.pm.get_plugin(name) is not None:
                self.pm.unregister(name=name)
            self._failures.append(LoadFailure(name, group, str(exc)))
            log.warning("plugin %s (%s) was refused: %s", name, group, exc)
            return None
        self._loaded[name] = loaded
        # A routed caller leaves out the plugins registered when it was made; one registered later
        # (lazy loading) would be called too. Make them afresh. (Every plugin a sync uses is loaded
        # before its threads start, so no call is in flight here.)
        self._callers.clear()
        return loaded

    def _register(self, name: str, obj: Any, kind: PluginKind, entry_point: Any) -> LoadedPlugin:
        if name in self._loaded:
            raise PluginError(f"the name {name!r} is already taken by another plugin")
        try:
            self.pm.register(obj, name=name)
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"hook implementation does not match its spec: {exc}") from exc
        hooks = []
        for caller in self.pm.get_hookcallers(obj) or []:
            if not caller.has_spec():
                raise PluginError(
                    f"implements unknown hook {caller.name!r} (misspelled?); "
                    f"known hooks: {', '.join(sorted(_spec_names()))}"
                )
            hooks.append(caller.name)
        if "plugin_info" not in hooks:
            raise PluginError("does not implement plugin_info()")
        try:
            info = self._call(name, "plugin_info")
        except ValidationError as exc:
            fields = ", ".join(".".join(map(str, e["loc"])) + f" ({e['msg'].lower()})" for e in exc.errors())
            raise PluginError(f"plugin_info() returned an invalid PluginInfo: {fields}") from exc
        if not isinstance(info, PluginInfo):
            raise PluginError("plugin_info() must return an invoicesync.PluginInfo")
        if info.kind is not kind:
            raise PluginError(f"is a {info.kind.value} but is registered as a {kind.value} ({GROUPS[kind]})")
        low, high = info.api_version
        if high < hookspecs.MIN_API_VERSION or low > hookspecs.API_VERSION:
            raise PluginError(
                f"supports invoicesync plugin API {low}..{high}, but this invoicesync drives API "
                f"{hookspecs.MIN_API_VERSION}..{hookspecs.API_VERSION}; upgrade the plugin or invoicesync"
            )
        required = {PluginKind.SOURCE: {"auth", "list_documents", "fetch_document"},
                    PluginKind.TARGET: {"auth", "push_documents"}}[kind]
        if missing := required - set(hooks):
            raise PluginError(f"a {kind.value} must implement {', '.join(sorted(missing))}")
        return LoadedPlugin(name, kind, info, obj, sorted(hooks), entry_point)

    # -- calling -----------------------------------------------------------------------------

    def get(self, name: str, kind: PluginKind | None = None) -> LoadedPlugin:
        plugin = self._loaded.get(name)
        if plugin is None:  # not loaded, or being loaded by another thread: wait for that, then look
            with self._loading:
                self._load(name)
                plugin = self._loaded.get(name)
        if plugin is None:
            failed = next((f for f in self.failures if f.name == name), None)
            if failed:
                raise PluginError(f"plugin {name!r} is installed but failed to load: {failed.error}")
            known = ", ".join(sorted(self.loaded)) or "none"
            raise PluginError(f"no plugin called {name!r} is installed (installed: {known})")
        if kind is not None and plugin.kind is not kind:
            raise PluginError(f"plugin {name!r} is a {plugin.kind.value}, not a {kind.value}")
        return plugin

    def call(self, name: str, hook: str, **kwargs: Any) -> Any:
        """Call ``hook`` on plugin ``name`` only, and return its result."""
        if hook in BROADCAST_HOOKS:
            raise PluginError(f"{hook} is called on every plugin; use pm.hook.{hook}")
        plugin = self.get(name)
        if hook not in plugin.hooks:
            raise PluginError(f"plugin {name!r} does not implement {hook}()")
        return self._call(name, hook, **kwargs)

    def _call(self, name: str, hook: str, **kwargs: Any) -> Any:
        key = (name, hook)
        caller = self._callers.get(key)
        if caller is None:
            others = [p for p in self.pm.get_plugins() if self.pm.get_name(p) != name]
            caller = self.pm.subset_hook_caller(hook, remove_plugins=others)
            self._callers[key] = caller
        return caller(**kwargs)

    def register_commands(self, cli: Any) -> None:
        """Let API 1 plugins add their commands to ``cli`` (the deprecated broadcast hook): once
        for this set of plugins, importing them all."""
        if self._commands_registered:
            return
        self._commands_registered = True
        self.load_all()
        self.pm.hook.register_commands(cli=cli)

    def of_kind(self, kind: PluginKind) -> list[LoadedPlugin]:
        return [p for p in self.loaded.values() if p.kind is kind]


def _ignore(names: Any) -> None:
    """A name missing from one group is expected: it may be in the other."""


def _spec_names() -> list[str]:
    return [n for n in dir(hookspecs) if hasattr(getattr(hookspecs, n), "invoicesync_spec")]


def _env_allow_list() -> set[str] | None:
    value = os.environ.get("INVOICESYNC_LOAD_PLUGINS")
    if value is None:
        return None
    return {n.strip() for n in value.split(",") if n.strip()}


@functools.cache
def _packages_distributions() -> dict[str, list[str]]:
    return dict(metadata.packages_distributions())  # slow (reads every dist's metadata): once


def _distribution(entry_point: Any) -> tuple[str | None, str | None]:
    """The distribution that ships an entry point (stevedore's cached entry points carry no dist)."""
    if entry_point is None:
        return None, None
    top = entry_point.value.split(":")[0].split(".")[0]
    # Usually the distribution is named after its package (invoicesync_billit → invoicesync-billit):
    # when that one declares this very entry point, it ships it, and scanning every installed
    # distribution's metadata (a tenth of a second of CPU on each start) is not needed.
    try:
        guessed = metadata.distribution(top.replace("_", "-"))
        if any(ep.value == entry_point.value for ep in guessed.entry_points):
            return guessed.metadata["Name"], guessed.version
    except metadata.PackageNotFoundError:
        pass
    for name in _packages_distributions().get(top, []):
        try:
            return name, metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None, None


__all__ = ["GROUPS", "LoadFailure", "LoadedPlugin", "Plugins"]
