"""Secrets live apart from settings: the OS keyring when there is one, otherwise a 0600 file.

Every value that passes through here is also registered with the log redactor, so it can never
reach stdout, stderr or a log line, even inside an exception message.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import threading
import uuid
from collections.abc import Hashable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Protocol

_SERVICE = "invoicesync"
#: A piece of a secret at least this long is redacted wherever it appears (an error message that
#: shows a value's first and last characters must not leak half a token).
FRAGMENT = 8
_known: set[str] = set()
_fragments: dict[str, None] = {}  # every FRAGMENT-long window of every secret, for a linear scan
_known_lock = threading.Lock()


def register_secret(value: str | None, *, fragments: bool = True) -> None:
    """Remember ``value`` so that ``redact`` removes it, and any piece of it of ``FRAGMENT`` or
    more characters, from any text. ``fragments=False`` for a wrapper (a JSON token set) whose
    structure is ordinary text; its token values are registered on their own."""
    if value and len(value) >= 4:
        with _known_lock:
            _known.add(value)
            if fragments and len(value) >= FRAGMENT:
                for start in range(len(value) - FRAGMENT + 1):
                    _fragments[value[start:start + FRAGMENT]] = None


def redact(text: str) -> str:
    with _known_lock:
        values = sorted(_known, key=len, reverse=True)
        windows = _fragments
        for value in values:
            if value in text:
                text = text.replace(value, "***")
        if len(text) < FRAGMENT or not windows:
            return text
        covered = bytearray(len(text))
        for start in range(len(text) - FRAGMENT + 1):
            if text[start:start + FRAGMENT] in windows:
                covered[start:start + FRAGMENT] = b"\x01" * FRAGMENT
    if not any(covered):
        return text
    out, index = [], 0
    while index < len(text):
        if covered[index]:
            while index < len(text) and covered[index]:
                index += 1
            out.append("***")
        else:
            out.append(text[index])
            index += 1
    return "".join(out)


def safe_error_text(exc: BaseException) -> str:
    """An exception as one redacted line. A pydantic ``ValidationError`` is described by where and
    what, never by the input it was given (that input may be a secret)."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors())
        return redact(f"{exc.title} is invalid: {problems}")
    return redact(f"{type(exc).__name__}: {exc}")


class RedactingFilter(logging.Filter):
    """A logging filter that strips every known secret from records before they are written."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class RedactingFormatter(logging.Formatter):
    """Redacts the whole formatted record, tracebacks included (a filter only sees the message)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class SecretBackend(Protocol):
    name: str

    def get(self, ref: str) -> str | None: ...

    def set(self, ref: str, value: str) -> None: ...

    def delete(self, ref: str) -> None: ...


class FileBackend:
    """A JSON file readable by its owner only (mode 0600, written atomically)."""

    name = "file"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def _load(self) -> dict[str, str]:
        try:
            return dict(json.loads(self.path.read_text()))
        except FileNotFoundError:
            return {}

    def _save(self, data: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)

    def get(self, ref: str) -> str | None:
        with self._lock:
            return self._load().get(ref)

    def refs(self) -> list[str]:
        """Every stored name (``secrets migrate`` copies them all; a keyring cannot list its own)."""
        with self._lock:
            return sorted(self._load())

    def set(self, ref: str, value: str) -> None:
        with self._lock, self._across_processes():
            data = self._load()
            data[ref] = value
            self._save(data)

    @contextmanager
    def _across_processes(self) -> Iterator[None]:
        """Hold the file against other processes for a read-modify-write: workers sharing a home
        each store their accounts' rotated tokens, and none may write back a copy missing another's."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # drops the flock

    def version(self) -> tuple[int, int, int] | None:
        """A cheap mark that changes with every write (each one replaces the file): its inode,
        mtime and size; ``None`` while there is no file."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return None
        return stat.st_ino, stat.st_mtime_ns, stat.st_size

    def delete(self, ref: str) -> None:
        with self._lock, self._across_processes():
            data = self._load()
            if data.pop(ref, None) is not None:
                self._save(data)


class KeyringBackend:
    """The OS keyring, one service name per home (``invoicesync:<home id>``): two homes on one
    desktop with an account of the same name must never read, or delete, each other's secrets."""

    name = "keyring"

    def __init__(self, home: Path | None = None) -> None:
        import keyring

        self._keyring = keyring
        self._home = home
        self._service: str | None = None if home is not None else _SERVICE

    @property
    def service(self) -> str:
        if self._service is None:
            assert self._home is not None
            self._service = f"{_SERVICE}:{home_id(self._home)}"
        return self._service

    def get(self, ref: str) -> str | None:
        value: str | None = self._keyring.get_password(self.service, ref)
        if value is None and self.service != _SERVICE:
            value = self._keyring.get_password(_SERVICE, ref)
            if value is not None:
                # Stored before entries were scoped to a home: move it into this one, once.
                self._keyring.set_password(self.service, ref, value)
                self._delete(_SERVICE, ref)
        return value

    def set(self, ref: str, value: str) -> None:
        self._keyring.set_password(self.service, ref, value)

    def delete(self, ref: str) -> None:
        self._delete(self.service, ref)

    def _delete(self, service: str, ref: str) -> None:
        try:
            self._keyring.delete_password(service, ref)
        except self._keyring.errors.PasswordDeleteError:
            pass


def home_id(home: Path) -> str:
    """A stable id of ``home``, kept in ``home/home-id`` (created on first use). It moves with the
    folder in a back-up or a rename, so the keyring entries keep belonging to it."""
    path = home / "home-id"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    new = uuid.uuid4().hex
    try:
        home.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:  # another process made it first: use theirs
        return path.read_text().strip()
    except OSError as exc:
        from .errors import ConfigError

        raise ConfigError(f"cannot create {path} ({exc.strerror or exc}), which names this home's keyring "
                          f"entries; run the command as the owner of {home}") from None
    with os.fdopen(fd, "w") as handle:
        handle.write(new + "\n")
    return new


def choose_backend(home: Path, preference: str | None = None) -> SecretBackend:
    """``INVOICESYNC_SECRETS`` = ``keyring`` | ``file``; by default a usable keyring, else the file."""
    preference = preference or os.environ.get("INVOICESYNC_SECRETS", "auto")
    file_backend = FileBackend(home / "secrets.json")
    if preference == "file":
        return file_backend
    try:
        import keyring
        from keyring.backends import fail, null

        usable = not isinstance(keyring.get_keyring(), fail.Keyring | null.Keyring)
        priority = getattr(keyring.get_keyring(), "priority", 0)
    except Exception:  # noqa: BLE001 - any broken keyring install means "no keyring"
        usable, priority = False, 0
    if usable and (preference == "keyring" or priority >= 1):
        return KeyringBackend(home)
    if preference == "keyring":
        from .errors import ConfigError

        raise ConfigError("INVOICESYNC_SECRETS=keyring, but no usable OS keyring was found")
    return file_backend


class NamedLocks(Protocol):
    """Locks by name shared by every process using one state (``StateStore.named_lock``)."""

    def named_lock(self, name: str, *, timeout: float | None = 60.0) -> AbstractContextManager[None]: ...


class AccountSecrets:
    """One account's secrets. Environment variables ``INVOICESYNC_<ACCOUNT>_<KEY>`` win.

    With ``locks`` (the state), ``lock(key)`` holds a key against every process using that state:
    ``TokenAuth`` refreshes under it, so two workers never spend one single-use refresh token."""

    def __init__(self, backend: SecretBackend, account: str, *, locks: NamedLocks | None = None) -> None:
        self.backend = backend
        self.account = account
        self.locks = locks

    def lock(self, key: str, *, timeout: float | None = 60.0) -> AbstractContextManager[None]:
        """Hold ``key`` of this account against other processes (nothing to hold without ``locks``)."""
        if self.locks is None:
            return nullcontext()
        return self.locks.named_lock(f"secret {self.account}/{key}", timeout=timeout)

    def _ref(self, key: str) -> str:
        return f"{self.account}/{key}"

    def get(self, key: str) -> str | None:
        value = os.environ.get(env_name(self.account, key)) or self.backend.get(self._ref(key))
        _register_all(value)
        return value

    def set(self, key: str, value: str) -> None:
        _register_all(value)
        self.backend.set(self._ref(key), value)

    def version(self, key: str) -> Hashable | None:
        """A cheap mark that changes when ``key``'s value may have (``TokenAuth`` caches by it):
        the environment variable's value, or the backend's own mark; ``None`` when the backend
        cannot tell without reading the value (the keyring)."""
        override = os.environ.get(env_name(self.account, key))
        if override:
            return ("env", override)
        version = getattr(self.backend, "version", None)
        return ("backend", version()) if callable(version) else None

    def delete(self, key: str) -> None:
        self.backend.delete(self._ref(key))


def _register_all(value: str | None) -> None:
    try:
        items = json.loads(value).items() if value and value.startswith("{") else None
    except (ValueError, AttributeError):
        items = None
    if items is None:
        register_secret(value)
        return
    # A token set: the whole JSON, and each token inside it on its own (with its fragments); its
    # keys and its non-secret fields (scope, token_type) are ordinary text.
    register_secret(value, fragments=False)
    for key, item in items:
        if isinstance(item, str) and (("token" in key and key != "token_type") or "secret" in key):
            register_secret(item)


def env_name(account: str, key: str) -> str:
    return "INVOICESYNC_" + re.sub(r"[^A-Za-z0-9]", "_", f"{account}_{key}").upper()
