"""The dashboard's admin users and its session secret: files in the home, readable by its owner only.

Passwords are kept as argon2id hashes (argon2-cffi); the plain password is never stored or logged.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ..errors import ConfigError

USERS_FILE = "server-users.json"
SECRET_FILE = "server-secret"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
MIN_PASSWORD = 12

#: argon2id with argon2-cffi's defaults (RFC 9106's low-memory profile); tests swap in a cheaper one.
_hasher = PasswordHasher()
_dummy: dict[PasswordHasher, str] = {}


def _dummy_hash() -> str:
    """Verified against when the user does not exist, so a wrong name costs as long as a wrong password."""
    if _hasher not in _dummy:
        _dummy[_hasher] = _hasher.hash(secrets.token_urlsafe(16))
    return _dummy[_hasher]


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600 from the first byte (never briefly world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(tmp, 0o600)  # O_CREAT's mode is ignored for a file a crash left behind
    os.replace(tmp, path)


class Users:
    """``server-users.json`` in the home: ``{name: argon2 hash}``."""

    def __init__(self, home: Path) -> None:
        self.path = home / USERS_FILE

    def _load(self) -> dict[str, str]:
        if not self.path.exists():
            return {}
        data = json.loads(self.path.read_text())
        return {str(k): str(v) for k, v in data.items()}

    def exists(self, name: str) -> bool:
        return name in self._load()

    def names(self) -> list[str]:
        return sorted(self._load())

    def add(self, name: str, password: str) -> None:
        """Add ``name``, or set a new password for it."""
        if not NAME.match(name):
            raise ConfigError(f"{name!r} is not a usable user name (letters, digits, . _ @ -)")
        if len(password) < MIN_PASSWORD:
            raise ConfigError(f"the password must have at least {MIN_PASSWORD} characters")
        users = self._load()
        users[name] = _hasher.hash(password)
        _write_private(self.path, json.dumps(users, indent=2) + "\n")

    def remove(self, name: str) -> bool:
        users = self._load()
        if users.pop(name, None) is None:
            return False
        _write_private(self.path, json.dumps(users, indent=2) + "\n")
        return True

    def verify(self, name: str, password: str) -> bool:
        stored = self._load().get(name)
        try:
            return _hasher.verify(stored or _dummy_hash(), password) and stored is not None
        except (VerificationError, InvalidHashError):
            return False


def session_secret(home: Path) -> str:
    """The key that signs session cookies: made once, kept 0600 in the home, never shown."""
    path = home / SECRET_FILE
    if path.exists():
        return path.read_text().strip()
    secret = secrets.token_urlsafe(48)
    _write_private(path, secret + "\n")
    return secret
