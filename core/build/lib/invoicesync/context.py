"""What a plugin is told about itself (``PluginInfo``) and what it is handed on each call (``Context``)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

import httpx
from pydantic import BaseModel, ConfigDict

from .http import Authenticator, Budget, ErrorParser, HttpClient, ResponseClassifier

if TYPE_CHECKING:
    from .models import Account
    from .secrets import AccountSecrets
    from .state import BlobStore, KeyValue


class PluginKind(StrEnum):
    SOURCE = "source"
    TARGET = "target"


class Settings(BaseModel):
    """Base class of a plugin's settings model. Unknown keys are an error: they are typos."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class PluginInfo(BaseModel):
    """A plugin's self-description, returned by the ``plugin_info`` hook."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    kind: PluginKind
    title: str
    description: str = ""
    #: Inclusive range of core API versions (``invoicesync.API_VERSION``) the plugin supports.
    #: Required: a plugin states what it was written for, and a mismatch is refused at load time.
    api_version: tuple[int, int]
    #: The pydantic model that validates an account's settings.
    settings: type[Settings] = Settings
    #: Names of secrets the plugin keeps (for ``accounts`` output and redaction); never values.
    secrets: Sequence[str] = ()
    #: Targets: how many documents ``push_documents`` takes at once, and how many batches run in parallel.
    batch_size: int = 1
    concurrency: int = 4
    #: Requests allowed per ``budget_period`` seconds for one account (None: unlimited).
    budget_requests: int | None = None
    budget_period: float = 60.0


class UI(Protocol):
    """How a plugin talks to the person at the keyboard during ``connect``."""

    interactive: bool

    def echo(self, message: str) -> None: ...

    def prompt(self, text: str, *, secret: bool = False, default: str | None = None) -> str: ...

    def choose(self, text: str, options: Sequence[tuple[str, str]], *, multiple: bool) -> list[str]:
        """Pick from ``(value, label)`` options; return the chosen values."""
        ...

    def open_url(self, url: str) -> bool:
        """Open ``url`` in a browser; ``False`` if none could be opened (or ``--no-browser``)."""
        ...


class NonInteractiveUI:
    """The UI for scripts and the runner: never asks, fails clearly when it would have to."""

    interactive = False

    def __init__(self, log: logging.Logger | None = None) -> None:
        self._log = log or logging.getLogger("invoicesync")

    def echo(self, message: str) -> None:
        self._log.info(message)

    def prompt(self, text: str, *, secret: bool = False, default: str | None = None) -> str:
        if default is not None:
            return default
        from .errors import ConfigError

        raise ConfigError(f"{text}: an answer is needed, but this run is not interactive")

    def choose(self, text: str, options: Sequence[tuple[str, str]], *, multiple: bool) -> list[str]:
        from .errors import ConfigError

        raise ConfigError(f"{text}: a choice is needed, but this run is not interactive")

    def open_url(self, url: str) -> bool:
        return False


@dataclass
class Context:
    """Everything a plugin needs for one account: settings, secrets, storage, HTTP and UI.

    Plugins use ``ctx.http(...)`` for every request, so retries, backoff, ``Retry-After``,
    the request budget, token refresh and test transports work the same for all of them.
    """

    account: Account
    settings: Any
    secrets: AccountSecrets
    blobs: BlobStore
    kv: KeyValue
    ui: UI = field(default_factory=NonInteractiveUI)
    dry_run: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    #: Tests inject a transport here; ``None`` means real network I/O.
    transport: httpx.BaseTransport | None = None
    #: CA bundle (path) or ``False``/``True`` for TLS verification, e.g. a sandbox's throw-away CA.
    verify: str | bool = True
    budget: Budget | None = None
    #: How HTTP retries wait; tests inject a recorder so backoff costs no wall time.
    sleep: Callable[[float], None] = time.sleep
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("invoicesync.plugin"))
    _clients: list[HttpClient] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def http(
        self,
        base_url: str = "",
        *,
        service: str | None = None,
        auth: Authenticator | None = None,
        error_parser: ErrorParser | None = None,
        classify: ResponseClassifier | None = None,
        timeout: float = 60.0,
        max_attempts: int = 6,
        headers: dict[str, str] | None = None,
    ) -> HttpClient:
        """A client for one service, sharing this account's budget and the test transport."""
        client = HttpClient(
            base_url,
            service=service or self.account.plugin,
            auth=auth,
            classify=classify,
            error_parser=error_parser,
            budget=self.budget,
            transport=self.transport,
            verify=self.verify,
            timeout=timeout,
            max_attempts=max_attempts,
            headers=headers,
            sleep=self.sleep,
        )
        with self._lock:
            self._clients.append(client)
        return client

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()
