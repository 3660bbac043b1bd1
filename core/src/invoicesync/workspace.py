"""A home folder and what lives in it: state, blobs, secrets, config — and the per-account Context."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from .config import Config, load_config
from .context import UI, Context, NonInteractiveUI, PluginInfo, PluginKind, Resources
from .errors import ConfigError, PluginError
from .export_options import ExportOptions, export_options, split_settings, unknown_settings, unknown_settings_message
from .http import Budget, RequestBudget, SharedBudget
from .models import Account, AccountDirection
from .plugins import Plugins
from .secrets import AccountSecrets, SecretBackend, choose_backend, redact
from .state import BlobStore, StateStore, open_blob_store, open_state
from .workspace_files import home_is_writable, open_state_read_only, prepare_home


def default_home() -> Path:
    if home := os.environ.get("INVOICESYNC_HOME"):
        return Path(home)
    import platformdirs  # only without a home given: a sync run with --home or the variable never needs it

    return Path(platformdirs.user_data_dir("invoicesync"))


@dataclass
class Workspace:
    """Everything one invoicesync home holds, opened once per command."""

    home: Path
    plugins: Plugins
    state: StateStore
    blobs: BlobStore
    secret_backend: SecretBackend
    config: Config
    #: Injected into every Context (tests point plugins at in-process transports).
    transport: httpx.BaseTransport | None = None
    verify: str | bool = True
    #: How waits happen (HTTP backoff and the request budget); tests inject a recorder.
    sleep: Callable[[float], None] = time.sleep
    _budgets: dict[str, RequestBudget] = field(default_factory=dict)
    #: What plugins share across accounts and contexts (``Context.shared_resource``) for as long as
    #: this workspace is open: a command's run, or a Celery worker's life (a context per task).
    _shared: Resources = field(default_factory=Resources)

    @classmethod
    def open(
        cls,
        home: Path | None = None,
        *,
        plugins: Plugins | None = None,
        config_file: Path | None = None,
        transport: httpx.BaseTransport | None = None,
        writable: bool = True,
    ) -> Workspace:
        """Open ``home``. With ``writable=False`` (commands that only read) a home this user may not
        write, or a read-only ``state.db``, is opened read-only instead of failing."""
        home = Path(home) if home else default_home()
        config = load_config(config_file or _default_config(home))
        if config.state_url is not None:  # the state is elsewhere; the home still holds blobs and secrets
            if writable or home_is_writable(home):
                prepare_home(home)
            state = open_state(home, config.state_url)
        elif writable or home_is_writable(home):
            prepare_home(home)
            state = open_state(home)
        else:
            state = open_state_read_only(home)
        try:
            blobs = open_blob_store(home, config.blob_url)
        except OSError as exc:
            state.close()
            where, owner = (config.blob_url, "its owner") if config.blob_url else (home / "blobs", "the home's owner")
            raise ConfigError(f"{where}: cannot be used ({exc.strerror or exc}); "
                              f"fix its permissions, or run invoicesync as {owner}") from None
        except ConfigError:
            state.close()
            raise
        return cls(
            home=home,
            plugins=plugins if plugins is not None else Plugins.installed(),
            state=state,
            blobs=blobs,
            secret_backend=_secret_backend(home, state, config),
            config=config,
            transport=transport,
        )

    def close(self) -> None:
        try:
            self._shared.close()
        finally:
            self.state.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- accounts: stored by `connect`, or declared in invoicesync.toml (which wins) ---------

    def accounts(self) -> list[Account]:
        merged = {a.name: a for a in self.state.list_accounts()}
        for account in self.config.accounts(self.plugins):
            merged[account.name] = account
        return sorted(merged.values(), key=lambda a: a.name)

    def account(self, name: str) -> Account:
        for account in self.accounts():
            if account.name == name:
                return account
        known = ", ".join(a.name for a in self.accounts()) or "none"
        raise ConfigError(f"no account called {name!r} (accounts: {known}); add one with `invoicesync connect`")

    def account_problem(self, account: Account) -> str | None:
        """Why ``account`` cannot be synced now (its plugin is not installed or failed to load), or None."""
        kind = PluginKind.SOURCE if account.direction is AccountDirection.IMPORT else PluginKind.TARGET
        try:
            self.plugins.get(account.plugin, None if account.name in self.config.unavailable else kind)
        except PluginError as exc:
            return str(exc)
        return None

    def direction_known(self, account: Account) -> bool:
        """False for a config account whose plugin is missing: only the plugin says which way it goes."""
        return not (account.origin == "config" and account.name in self.config.unavailable)

    def secrets(self, account: str) -> AccountSecrets:
        # The state's named locks let an OAuth refresh hold across processes (``TokenAuth``).
        return AccountSecrets(self.secret_backend, account, locks=self.state)

    def settings_for(self, account: Account) -> Any:
        """The account's settings, validated by the plugin's model, with env overrides applied.

        A target's export options (``invoicesync.export_options``) are the core's, not the plugin's:
        they are left out here and read with :meth:`export_options`."""
        plugin = self.plugins.get(account.plugin)
        model = plugin.info.settings
        own, _ = split_settings(account)
        target = account.direction is AccountDirection.EXPORT
        if unknown := unknown_settings(own, model.model_fields, target=target):
            raise ConfigError(unknown_settings_message(f"account {account.name!r} ({account.plugin})", unknown,
                                                       model.model_fields, target=target))
        values = {**own, **self.config.env_overrides(account.name, model)}
        try:
            return model.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors())
            message = f"account {account.name!r} ({account.plugin}) has invalid settings: {problems}"
            raise ConfigError(redact(message)) from None

    def export_options(self, account: Account) -> ExportOptions:
        """A target account's export options, with ``INVOICESYNC_<ACCOUNT>_<OPTION>`` overrides."""
        return export_options(account, self.config.env_overrides(account.name, ExportOptions))

    def context(self, account: Account, *, ui: UI | None = None, dry_run: bool = False,
                options: dict[str, Any] | None = None) -> Context:
        plugin = self.plugins.get(account.plugin)
        settings = self.settings_for(account)
        budget = self._budgets.get(account.name)
        if budget is None:
            budget = self._budgets[account.name] = self._new_budget(account, plugin.info, settings)
        # A plugin may declare a `ca_bundle` setting to trust a TLS test server's private CA.
        verify = getattr(settings, "ca_bundle", None) or self.verify
        return Context(
            account=account,
            settings=settings,
            secrets=self.secrets(account.name),
            blobs=self.blobs,
            kv=self.state.kv(account.name),
            ui=ui or NonInteractiveUI(),
            dry_run=dry_run,
            options=options or {},
            transport=self.transport,
            verify=verify,
            budget=budget,
            sleep=self.sleep,
            log=logging.getLogger(f"invoicesync.plugin.{account.plugin}"),
            shared=self._shared,
        )

    def _new_budget(self, account: Account, info: PluginInfo, settings: Any = None) -> RequestBudget:
        """One budget per (service, credential) — an account — for every thread of this process;
        kept in the state for every process using it when several may (``shared_budgets``)."""
        concurrency = max_in_flight(info, settings)
        if self.config.shared_budgets:
            return SharedBudget(self.state.budget_ledger(), f"{account.plugin}:{account.name}",
                                info.budget_requests, info.budget_period, concurrency=concurrency, sleep=self.sleep)
        return Budget(info.budget_requests, info.budget_period, concurrency=concurrency, sleep=self.sleep)


def _secret_backend(home: Path, state: StateStore, config: Config) -> SecretBackend:
    """The home's keyring or secrets.json; the state (encrypted, this machine's key kept in the
    home) when workers on several machines share it (``shared_secrets``)."""
    home_backend = choose_backend(home)
    if not config.shared_secrets:
        return home_backend
    from .state._secrets import StateSecretBackend
    from .state._sql import SqlStore

    assert isinstance(state, SqlStore)  # both stores are (a read-only state.db too)
    return StateSecretBackend(state, home_backend)


def max_in_flight(info: PluginInfo, settings: Any) -> int:
    """Requests in flight at once for one account: the account's ``max_in_flight`` setting (when
    the plugin declares one), else the plugin's declared limit, else twice its concurrency."""
    chosen = getattr(settings, "max_in_flight", None) or info.max_in_flight
    return max(1, int(chosen)) if chosen else max(4, info.concurrency * 2)


def _default_config(home: Path) -> Path | None:
    for candidate in (os.environ.get("INVOICESYNC_CONFIG"), "invoicesync.toml", home / "invoicesync.toml"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None
