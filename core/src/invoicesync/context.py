"""What a plugin is told about itself (``PluginInfo``) and what it is handed on each call (``Context``)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from .http import Authenticator, ErrorParser, HttpClient, RequestBudget, ResponseClassifier
from .http._client import new_pool

if TYPE_CHECKING:
    from .models import Account
    from .secrets import AccountSecrets
    from .state import BlobStore, KeyValue


T = TypeVar("T")
SettingsT = TypeVar("SettingsT", bound=BaseModel)


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
    #: Sources: how many documents are fetched at once (each fetch is a chain of requests).
    batch_size: int = 1
    concurrency: int = 4
    #: Targets, hook API 4: ``push_documents`` takes ``requests`` as a lazy iterable that yields each
    #: document as the import brings it and ends when the run has nothing more, and yields deliveries
    #: as they land. One such call runs per account at a time (``batch_size``/``concurrency`` then do
    #: not apply); older plugins get lists.
    streaming: bool = False
    #: Requests in flight at once for one account (one credential), all threads together: what the
    #: service tolerates before it answers 429. ``None``: twice ``concurrency``, at least 4. An
    #: account overrides it with a ``max_in_flight`` setting, when the plugin's settings declare one.
    max_in_flight: int | None = None
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
    #: The account's settings, validated by the plugin's model. Typed as ``Any`` for plugins written
    #: before ``settings_as``; new code reads ``ctx.settings_as(MySettings)``, which is typed.
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
    budget: RequestBudget | None = None
    #: How HTTP retries wait; tests inject a recorder so backoff costs no wall time.
    sleep: Callable[[float], None] = time.sleep
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("invoicesync.plugin"))
    #: How many ``submit`` calls run at once for this account.
    side_threads: int = 4
    #: One connection pool per (base URL, timeout, headers) for the life of this context (a run).
    _pools: dict[tuple[Any, ...], httpx.Client] = field(default_factory=dict, repr=False)
    _resources: Resources = field(default_factory=lambda: Resources(), repr=False)
    #: The workspace's resources: they outlive this context (see ``shared_resource``).
    shared: Resources | None = field(default=None, repr=False)
    #: ``settings_as`` results: model -> (the ``settings`` object it was made from, the typed copy).
    _typed_settings: dict[type[BaseModel], tuple[Any, BaseModel]] = field(default_factory=dict, repr=False)
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
        """A client for one service, sharing this account's budget and the test transport.

        Cheap to call per batch: every client for the same ``base_url``, ``timeout`` and ``headers``
        shares one connection pool (and TLS context) for the whole run, closed by ``close()``;
        only the policy (``auth``, ``classify``, ``error_parser``, attempts) is per client.
        """
        key = (base_url, timeout, tuple(sorted((headers or {}).items())))
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                pool = self._pools[key] = new_pool(base_url, transport=self.transport, verify=self.verify,
                                                   timeout=timeout, headers=headers)
        return HttpClient(
            base_url,
            service=service or self.account.plugin,
            auth=auth,
            classify=classify,
            error_parser=error_parser,
            budget=self.budget,
            max_attempts=max_attempts,
            sleep=self.sleep,
            pool=pool,
        )

    def settings_as(self, model: type[SettingsT]) -> SettingsT:
        """The account's settings as ``model`` (the plugin's settings class), typed for the plugin's code.

        The runner has already validated them with the plugin's model, so this is usually a type
        check. Settings given another way (a dict, another model: tests, older callers) are
        validated once per model and kept; a value that does not fit raises ``ConfigError``."""
        settings = self.settings
        if isinstance(settings, model):
            return settings
        cached = self._typed_settings.get(model)
        if cached is not None and cached[0] is settings:  # same object: a reassigned ``settings`` is read anew
            return cast(SettingsT, cached[1])
        values = settings.model_dump() if isinstance(settings, BaseModel) else settings
        try:
            typed = model.model_validate(values if values is not None else {})
        except ValidationError as exc:
            from .errors import ConfigError
            from .secrets import redact

            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors())
            raise ConfigError(redact(f"account {self.account.name!r} has settings that are not a valid "
                                     f"{model.__name__}: {problems}")) from None
        self._typed_settings[model] = (settings, typed)
        return typed

    def resource(self, key: Hashable, open: Callable[[], T]) -> T:
        """A plugin's run-scoped object (an API client, a token cache, a folder index): made by
        ``open()`` on first use, shared by every thread working for this account, and closed (if it
        has ``close()``) when the run ends, the last opened first. Key it by your plugin's name."""
        return self._resources.get(key, open)

    def shared_resource(self, key: Hashable, open: Callable[[], T]) -> T:
        """Like ``resource``, but one for every account and every context of the workspace, closed
        when the workspace closes: a local run, or a Celery worker's whole life (where each task has
        a context of its own). For what serves several accounts or tasks alike, e.g. a token cache
        per credential: key it by your plugin's name and that credential (a digest, never a secret).
        A context made without a workspace keeps it as its own ``resource``."""
        if self.shared is None:
            return self.resource(key, open)
        return self.shared.get(key, open)

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Run ``fn(*args, **kwargs)`` beside the caller, on this account's run-scoped threads, e.g. a
        document's PDF download while its detail is read (the listing often names the file already).
        At most ``side_threads`` at once; what has not started when the run ends is cancelled.
        ``fn`` must not wait for another ``submit``: the threads are few and shared."""
        pool = self.resource(_SIDE_POOL, lambda: _SidePool(self.side_threads, self.account.name))
        return pool.executor.submit(fn, *args, **kwargs)

    def close(self) -> None:
        """End the run's resources, then its connection pools. Safe to call more than once."""
        try:
            self._resources.close()
        finally:
            with self._lock:
                pools, self._pools = list(self._pools.values()), {}
            for pool in pools:
                pool.close()


class Resources:
    """Objects opened on first use, once per key even when threads race for it, and closed (those
    with a ``close()``) the last opened first: a context's (one account's run), or a workspace's."""

    def __init__(self) -> None:
        self._items: dict[Hashable, Any] = {}
        self._opening = threading.RLock()

    def get(self, key: Hashable, open: Callable[[], T]) -> T:
        with self._opening:  # one open() per key, even when threads race for it
            if key not in self._items:
                self._items[key] = open()
            return cast(T, self._items[key])

    def close(self) -> None:
        """Close every resource, then raise the first error any close raised. Safe to call again."""
        with self._opening:
            resources, self._items = list(self._items.values()), {}
        errors: list[Exception] = []
        for resource in reversed(resources):
            closer = getattr(resource, "close", None)
            if callable(closer):
                try:
                    closer()
                except Exception as exc:  # noqa: BLE001 - every resource (and pool) must still close
                    errors.append(exc)
        if errors:
            raise errors[0]


_SIDE_POOL = "invoicesync.side-threads"


class _SidePool:
    def __init__(self, threads: int, account: str) -> None:
        self.executor = ThreadPoolExecutor(max(1, threads), thread_name_prefix=f"side-{account}")

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
