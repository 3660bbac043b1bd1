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

Any setting can be overridden by ``INVOICESYNC_<ACCOUNT>_<SETTING>`` (upper case, ``-`` as ``_``).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from .context import PluginKind
from .errors import ConfigError
from .models import Account, AccountDirection, Company
from .secrets import env_name

if TYPE_CHECKING:
    from .plugins import Plugins


@dataclass
class Config:
    path: Path | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def accounts(self, plugins: Plugins) -> list[Account]:
        result = []
        for name, spec in (self.data.get("accounts") or {}).items():
            where = f"{self.path}: [accounts.{name}]"
            if not isinstance(spec, dict) or "plugin" not in spec:
                raise ConfigError(f"{where} needs a `plugin = \"...\"` line")
            plugin = plugins.get(spec["plugin"])
            settings = dict(spec.get("settings") or {})
            if leaked := set(settings) & set(plugin.info.secrets):
                raise ConfigError(
                    f"{where}: {', '.join(sorted(leaked))} is a secret and does not belong in the config file; "
                    f"set it with `invoicesync connect` or the environment variable "
                    f"{env_name(name, sorted(leaked)[0])}"
                )
            direction = AccountDirection.IMPORT if plugin.kind is PluginKind.SOURCE else AccountDirection.EXPORT
            companies = [Company(id=str(c), name=str(c)) if not isinstance(c, dict) else Company(**c)
                         for c in spec.get("companies") or []]
            try:
                result.append(Account(name=name, plugin=plugin.name, direction=direction, settings=settings,
                                      companies=companies, origin="config"))
            except ValueError as exc:
                raise ConfigError(f"{where}: {exc}") from None
        return result

    def env_overrides(self, account: str, model: type[BaseModel]) -> dict[str, Any]:
        overrides = {}
        for name in model.model_fields:
            value = os.environ.get(env_name(account, name))
            if value is not None:
                overrides[name] = value
        return overrides


def load_config(path: Path | None) -> Config:
    if path is None:
        return Config()
    try:
        return Config(path, tomllib.loads(path.read_text()))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
