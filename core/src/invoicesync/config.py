"""``invoicesync.toml``: accounts declared as code, for ops and GitOps. Secrets never go here.

    [accounts.billit-acme]
    plugin = "billit"
    companies = ["123456"]          # Billit PartyIDs
    [accounts.billit-acme.settings]
    environment = "sandbox"

    [accounts.archive]
    plugin = "localfs"
    [accounts.archive.settings]
    root = "/srv/invoices"

A target account also takes the core's export options here (``files``, ``directions``, ``kinds``,
``since``, ``until``, ``companies``; see ``invoicesync.export_options``). An unknown setting is an
error that lists the valid ones: a typo must not be silently ignored.

``every = "15m"`` or ``cron = "0 */2 * * *"`` on an account is its schedule, which
``invoicesync serve`` runs (``invoicesync.schedules``).

Any setting can be overridden by ``INVOICESYNC_<ACCOUNT>_<SETTING>`` (upper case, ``-`` as ``_``).

``state_url = "postgresql://user@host/db"`` (top level; env ``INVOICESYNC_STATE_URL``) keeps the state
in PostgreSQL instead of the home's state.db (docs/scale-out.md). ``shared_budgets = true|false``
(env ``INVOICESYNC_SHARED_BUDGETS``) keeps request budgets in the state, for several processes.
``shared_secrets = true|false`` (env ``INVOICESYNC_SHARED_SECRETS``) keeps logins in the state,
encrypted with each machine's key, for workers on several machines (``invoicesync.secrets_key``).
``blob_url = "s3://bucket/prefix"`` or ``"file:///shared/folder"`` (env ``INVOICESYNC_BLOB_URL``)
keeps file content there instead of the home's blobs/.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from .context import PluginKind
from .errors import ConfigError, PluginError
from .export_options import unknown_settings, unknown_settings_message
from .models import Account, AccountDirection, Company
from .schedules import Schedule, parse_schedule
from .secrets import env_name

if TYPE_CHECKING:
    from .plugins import Plugins


@dataclass
class Config:
    path: Path | None = None
    data: dict[str, Any] = field(default_factory=dict)
    #: Accounts declared here whose plugin cannot be used (not installed, failed to load): the
    #: problem, per account name. They are still listed, so that every command reports them
    #: instead of one missing plugin making every command fatal.
    unavailable: dict[str, str] = field(default_factory=dict)

    def accounts(self, plugins: Plugins) -> list[Account]:
        result = []
        for name, spec in self._account_specs().items():
            where = f"{self.path}: [accounts.{name}]"
            try:
                plugin = plugins.get(spec["plugin"])
            except PluginError as exc:
                self.unavailable[name] = str(exc)
                # The direction comes from the plugin; without one, "import" stands in (nothing runs it).
                try:
                    result.append(Account(name=name, plugin=spec["plugin"], direction=AccountDirection.IMPORT,
                                          settings=dict(spec.get("settings") or {}), origin="config"))
                except ValueError as invalid:
                    raise ConfigError(f"{where}: {invalid}") from None
                continue
            settings = dict(spec.get("settings") or {})
            if leaked := set(settings) & set(plugin.info.secrets):
                raise ConfigError(
                    f"{where}: {', '.join(sorted(leaked))} is a secret and does not belong in the config file; "
                    f"set it with `invoicesync connect` or the environment variable "
                    f"{env_name(name, sorted(leaked)[0])}"
                )
            direction = AccountDirection.IMPORT if plugin.kind is PluginKind.SOURCE else AccountDirection.EXPORT
            fields = plugin.info.settings.model_fields
            target = direction is AccountDirection.EXPORT
            if unknown := unknown_settings(settings, fields, target=target):
                raise ConfigError(unknown_settings_message(where, unknown, fields, target=target))
            try:
                companies = [Company(id=str(c), name=str(c)) if not isinstance(c, dict) else Company(**c)
                             for c in spec.get("companies") or []]
                result.append(Account(name=name, plugin=plugin.name, direction=direction, settings=settings,
                                      companies=companies, origin="config"))
            except ValueError as exc:
                raise ConfigError(f"{where}: {exc}") from None
        return result

    def _account_specs(self) -> dict[str, dict[str, Any]]:
        """``[accounts.NAME]`` tables, checked for shape: a TOML that parses can still be wrong."""
        accounts = self.data.get("accounts")
        if accounts is None:
            return {}
        if not isinstance(accounts, dict):
            raise ConfigError(f"{self.path}: `accounts` must be a table of accounts, like [accounts.archive] "
                              f"with a plugin = \"...\" line, not {_toml_kind(accounts)}")
        for name, spec in accounts.items():
            where = f"{self.path}: [accounts.{name}]"
            if not isinstance(spec, dict):
                raise ConfigError(f"{where} must be a table (a [accounts.{name}] section with a "
                                  f"plugin = \"...\" line), not {_toml_kind(spec)}")
            if not isinstance(spec.get("plugin"), str) or not spec["plugin"]:
                raise ConfigError(f"{where} needs a `plugin = \"...\"` line naming an installed plugin "
                                  f"(`invoicesync plugins` lists them)")
            if not isinstance(spec.get("settings", {}), dict):
                raise ConfigError(f"{where}: `settings` must be a table ([accounts.{name}.settings]), "
                                  f"not {_toml_kind(spec['settings'])}")
            companies = spec.get("companies", [])
            if not isinstance(companies, list) or not all(isinstance(c, str | int | dict) for c in companies):
                raise ConfigError(f"{where}: `companies` must be a list of company ids, like "
                                  f"companies = [\"123456\"], not {_toml_kind(companies)}")
            try:
                parse_schedule(spec.get("every"), spec.get("cron"))
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc}") from None
        return accounts

    def schedules(self) -> dict[str, Schedule]:
        """The accounts' schedules (``every`` or ``cron``), by account name; unscheduled ones are left out."""
        found = {}
        for name, spec in self._account_specs().items():
            schedule = parse_schedule(spec.get("every"), spec.get("cron"))
            if schedule is not None:
                found[name] = schedule
        return found

    @property
    def state_url(self) -> str | None:
        """Where the state lives when not in the home's state.db: ``state_url = "postgresql://…"``,
        overridden by ``INVOICESYNC_STATE_URL`` (the place for a URL with a password in it)."""
        url = os.environ.get("INVOICESYNC_STATE_URL") or self.data.get("state_url")
        if url is not None and not isinstance(url, str):
            raise ConfigError(f"{self.path}: `state_url` must be a string, like state_url = \"postgresql://host/db\", "
                              f"not {_toml_kind(url)}")
        return url or None

    @property
    def blob_url(self) -> str | None:
        """Where file content lives when not in the home's ``blobs/``: ``blob_url = "s3://bucket/prefix"``
        or ``"file:///shared/folder"``, overridden by ``INVOICESYNC_BLOB_URL``."""
        url = os.environ.get("INVOICESYNC_BLOB_URL") or self.data.get("blob_url")
        if url is not None and not isinstance(url, str):
            raise ConfigError(f"{self.path}: `blob_url` must be a string, like blob_url = \"s3://bucket/prefix\", "
                              f"not {_toml_kind(url)}")
        if url:
            from .state._blobs import check_blob_url

            check_blob_url(url)
        return url or None

    @property
    def shared_budgets(self) -> bool:
        """Whether each account's request budget (in-flight cap, rate, ``Retry-After`` pauses) is
        kept in the state, shared by every process using it: ``shared_budgets = true|false``, or
        ``INVOICESYNC_SHARED_BUDGETS=1|0``. By default on with a PostgreSQL state (several workers
        share it), off with a home's state.db (one process; the in-process budget costs nothing)."""
        return self._switch("shared_budgets", default=self.state_url is not None)

    @property
    def shared_secrets(self) -> bool:
        """Whether logins (token sets, client secrets, API keys) are kept in the state, encrypted with
        this machine's key, rather than in the home: ``shared_secrets = true|false``, or
        ``INVOICESYNC_SHARED_SECRETS=1|0``. By default on with a PostgreSQL state (workers on several
        machines share it, and a rotated refresh token must reach them all), off with a home's state.db."""
        return self._switch("shared_secrets", default=self.state_url is not None)

    def _switch(self, name: str, *, default: bool) -> bool:
        env = f"INVOICESYNC_{name.upper()}"
        raw: Any = os.environ.get(env)
        if raw is not None:
            if raw.strip().lower() not in _SWITCH:
                raise ConfigError(f"{env} must be 1 or 0 (true or false), not {raw!r}")
            return _SWITCH[raw.strip().lower()]
        raw = self.data.get(name)
        if raw is None:
            return default
        if not isinstance(raw, bool):
            raise ConfigError(f"{self.path}: `{name}` must be true or false, not {_toml_kind(raw)}")
        return raw

    def env_overrides(self, account: str, model: type[BaseModel]) -> dict[str, Any]:
        overrides = {}
        for name in model.model_fields:
            value = os.environ.get(env_name(account, name))
            if value is not None:
                overrides[name] = value
        return overrides


_SWITCH = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def _toml_kind(value: Any) -> str:
    """What a TOML value is, in TOML's words (never the value itself: it may be a misplaced secret)."""
    kinds = {dict: "a table", list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return next((kind for t, kind in kinds.items() if isinstance(value, t)), "a date or time")


def load_config(path: Path | None) -> Config:
    if path is None:
        return Config()
    try:
        config = Config(path, tomllib.loads(path.read_text()))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read ({getattr(exc, 'strerror', None) or exc}); "
                          f"check that it is a UTF-8 text file this user may read") from None
    config._account_specs()  # a file of the wrong shape fails every command up front, in one line
    _ = config.state_url
    _ = config.blob_url
    _ = config.shared_budgets
    _ = config.shared_secrets
    return config
