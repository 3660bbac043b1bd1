"""The Celery executor's settings: ``[celery]`` in invoicesync.toml, overridden by the environment.

    [celery]
    broker_url = "amqp://invoicesync@rabbit.internal:5672/invoicesync"   # or redis://host:6379/0
    queue = "invoicesync"       # the queue the coordinator fills and the workers consume
    chunk_seconds = 120         # an import task stops at a safe point after this; the next chunk goes on
    export_batch = 50           # documents per export task
    executor = "celery"         # serve's syncs (schedules, Sync now) enqueue too; default "local"

A broker URL with a password belongs in ``INVOICESYNC_BROKER_URL``, not in the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..config import Config
from ..errors import ConfigError

#: RabbitMQ on this machine with its stock guest account: what a developer has after installing it.
DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672//"
_ENV = {"broker_url": "INVOICESYNC_BROKER_URL", "queue": "INVOICESYNC_CELERY_QUEUE",
        "chunk_seconds": "INVOICESYNC_CELERY_CHUNK_SECONDS", "export_batch": "INVOICESYNC_CELERY_EXPORT_BATCH",
        "executor": "INVOICESYNC_EXECUTOR"}


_TYPES: dict[str, Any] = {"broker_url": str, "queue": str, "chunk_seconds": float, "export_batch": int,
                          "lease_wait": float, "idle_timeout": float, "executor": str}


@dataclass(frozen=True)
class CelerySettings:
    broker_url: str = DEFAULT_BROKER
    queue: str = "invoicesync"
    #: An import task stops listing at the next safe point after this many seconds, so no task
    #: comes near RabbitMQ's consumer_timeout (30 minutes), which would cancel an unacked task.
    chunk_seconds: float = 120.0
    export_batch: int = 50
    #: How long a task waits for its lease (another task importing the same company, or a local
    #: ``sync`` holding the state) before it reports the company as in progress elsewhere.
    lease_wait: float = 300.0
    #: The coordinator gives up when no task has answered for this long (no worker running?).
    idle_timeout: float = 1800.0
    #: Where ``serve`` runs its syncs: ``local`` (in its own process) or ``celery`` (enqueued for
    #: the workers). ``sync`` takes ``--executor`` (or ``INVOICESYNC_EXECUTOR``) instead.
    executor: str = "local"

    @classmethod
    def from_config(cls, config: Config) -> CelerySettings:
        table = config.data.get("celery", {})
        if not isinstance(table, dict):
            raise ConfigError(f"{config.path}: `celery` must be a table ([celery]), not a single value")
        known = set(_TYPES)
        if unknown := set(table) - known:
            raise ConfigError(f"{config.path}: [celery] has no setting {', '.join(sorted(unknown))} "
                              f"(known: {', '.join(sorted(known))})")
        values: dict[str, Any] = dict(table)
        for name, variable in _ENV.items():
            if os.environ.get(variable):
                values[name] = os.environ[variable]
        try:
            settings = cls(**{name: _TYPES[name](value) for name, value in values.items()})
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"[celery] settings are not valid: {exc}") from None
        if urlsplit(settings.broker_url).scheme not in ("amqp", "pyamqp", "amqps", "redis", "rediss"):
            raise ConfigError(f"the Celery broker {redacted_broker(settings.broker_url)!r} is neither amqp:// "
                              "(RabbitMQ) nor redis://")
        if settings.executor not in ("local", "celery"):
            raise ConfigError(f"the executor must be local or celery, not {settings.executor!r}")
        if settings.export_batch < 1 or settings.chunk_seconds <= 0:
            raise ConfigError("[celery] export_batch and chunk_seconds must be positive")
        return settings

    @property
    def redacted_broker(self) -> str:
        return redacted_broker(self.broker_url)


def redacted_broker(url: str) -> str:
    """The broker URL with its password masked, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()
