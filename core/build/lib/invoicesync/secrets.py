"""Secrets live apart from settings: the OS keyring when there is one, otherwise a 0600 file.

Every value that passes through here is also registered with the log redactor, so it can never
reach stdout, stderr or a log line, even inside an exception message.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from pathlib import Path
from typing import Protocol

_SERVICE = "invoicesync"
_known: set[str] = set()
_known_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Remember ``value`` so that ``redact`` removes it from any text."""
    if value and len(value) >= 4:
        with _known_lock:
            _known.add(value)


def redact(text: str) -> str:
    with _known_lock:
        values = sorted(_known, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, "***")
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that strips every known secret from records before they are written."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


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
        tmp = self.path.with_suffix(".tmp")
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

    def set(self, ref: str, value: str) -> None:
        with self._lock:
            data = self._load()
            data[ref] = value
            self._save(data)

    def delete(self, ref: str) -> None:
        with self._lock:
            data = self._load()
            if data.pop(ref, None) is not None:
                self._save(data)


class KeyringBackend:
    name = "keyring"

    def __init__(self) -> None:
        import keyring

        self._keyring = keyring

    def get(self, ref: str) -> str | None:
        value: str | None = self._keyring.get_password(_SERVICE, ref)
        return value

    def set(self, ref: str, value: str) -> None:
        self._keyring.set_password(_SERVICE, ref, value)

    def delete(self, ref: str) -> None:
        try:
            self._keyring.delete_password(_SERVICE, ref)
        except self._keyring.errors.PasswordDeleteError:
            pass


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
        return KeyringBackend()
    if preference == "keyring":
        from .errors import ConfigError

        raise ConfigError("INVOICESYNC_SECRETS=keyring, but no usable OS keyring was found")
    return file_backend


class AccountSecrets:
    """One account's secrets. Environment variables ``INVOICESYNC_<ACCOUNT>_<KEY>`` win."""

    def __init__(self, backend: SecretBackend, account: str) -> None:
        self.backend = backend
        self.account = account

    def _ref(self, key: str) -> str:
        return f"{self.account}/{key}"

    def get(self, key: str) -> str | None:
        value = os.environ.get(env_name(self.account, key)) or self.backend.get(self._ref(key))
        _register_all(value)
        return value

    def set(self, key: str, value: str) -> None:
        _register_all(value)
        self.backend.set(self._ref(key), value)

    def delete(self, key: str) -> None:
        self.backend.delete(self._ref(key))


def _register_all(value: str | None) -> None:
    register_secret(value)
    if value and value.startswith("{"):
        # A token set: make each token inside it redactable on its own.
        try:
            items = json.loads(value).values()
        except (ValueError, AttributeError):
            return
        for item in items:
            if isinstance(item, str) and len(item) >= 8:
                register_secret(item)


def env_name(account: str, key: str) -> str:
    return "INVOICESYNC_" + re.sub(r"[^A-Za-z0-9]", "_", f"{account}_{key}").upper()
