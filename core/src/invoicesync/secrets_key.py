"""The key that encrypts the logins kept in a shared state (``shared_secrets``).

Workers on several machines share one PostgreSQL state; their logins (token sets, client secrets,
API keys) live in it, so that a single-use refresh token spent by one worker is replaced for all.
The database holds only ciphertext: AES-256-GCM under a key that is a secret of each machine,
never of the state. Each value is bound to its name (the associated data), so a row copied onto
another name does not decrypt.

Where a machine's key comes from, first found wins:

- ``INVOICESYNC_SECRETS_KEY_FILE``: a file holding the key (a compose/Kubernetes secret mount);
- the home's own secret store (OS keyring, else ``secrets.json`` 0600), under ``KEY_REF``; put
  there by ``invoicesync secrets key import FILE``, or made on the first login stored in a state
  that holds none yet (``invoicesync secrets key export FILE`` then copies it to other machines).
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets as pysecrets
from pathlib import Path

from .errors import ConfigError
from .secrets import SecretBackend, register_secret

#: Where the key is kept in a home's own secret store (not an account: accounts never hold a ``/``-free ref).
KEY_REF = "invoicesync/state-secrets-key"
KEY_FILE_ENV = "INVOICESYNC_SECRETS_KEY_FILE"
_PREFIX = "invoicesync-key-v1:"
_FORMAT = "v1"


def new_key() -> str:
    """A fresh key, as text (what a key file holds)."""
    text = _PREFIX + base64.urlsafe_b64encode(pysecrets.token_bytes(32)).decode("ascii")
    _register(text)
    return text


def _register(text: str) -> None:
    """Redact the key material, not its public prefix: every 8-character piece of a registered
    secret is redacted, and the prefix's pieces would hide the word invoicesync in every message."""
    register_secret(text.removeprefix(_PREFIX))


def parse_key(text: str, where: str) -> bytes:
    """The 32 key bytes of a key's text; a clear error naming ``where`` for anything else."""
    text = text.strip()
    _register(text)
    if text.startswith(_PREFIX):
        try:
            raw = base64.urlsafe_b64decode(text[len(_PREFIX):].encode("ascii"))
        except ValueError:
            raw = b""
        if len(raw) == 32:
            return raw
    raise ConfigError(f"{where} does not hold an invoicesync secrets key (one line starting {_PREFIX!r}); "
                      f"write one with `invoicesync secrets key export FILE` on a machine that has it")


def key_id(key: bytes) -> str:
    """A short name of a key, safe to show: which key encrypted a row, which one a machine has."""
    return hashlib.sha256(b"invoicesync secrets key id\0" + key).hexdigest()[:12]


def machine_key_text(home_backend: SecretBackend) -> tuple[str, str] | None:
    """This machine's key as text and where it came from, or ``None`` when it has none."""
    path = os.environ.get(KEY_FILE_ENV)
    if path:
        try:
            return Path(path).read_text(), f"{KEY_FILE_ENV} ({path})"
        except OSError as exc:
            raise ConfigError(f"{KEY_FILE_ENV}={path}: cannot be read ({exc.strerror or exc}); mount the "
                              f"secrets key file there, readable by this user") from None
    stored = home_backend.get(KEY_REF)
    return (stored, f"this home's {home_backend.name} secret store") if stored else None


def missing_key_error(needed: str | None = None) -> ConfigError:
    which = f" (key {needed})" if needed else ""
    return ConfigError(f"the logins in the shared state are encrypted and this machine has no key for them{which}: "
                       f"run `invoicesync secrets key export FILE` on a machine that has it, then "
                       f"`invoicesync secrets key import FILE` here (or point {KEY_FILE_ENV} at the file)")


def wrong_key_error(needed: str, have: str, where: str) -> ConfigError:
    return ConfigError(f"the logins in the shared state are encrypted with key {needed}, but this machine's key "
                       f"(from {where}) is {have}: import the right one with `invoicesync secrets key import FILE` "
                       f"(or point {KEY_FILE_ENV} at it)")


class SecretsCipher:
    """AES-256-GCM with a random 96-bit nonce per value; the value's name is the associated data."""

    def __init__(self, key: bytes, where: str) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead = AESGCM(key)
        self.key_id = key_id(key)
        self.where = where

    def encrypt(self, ref: str, value: str) -> str:
        nonce = pysecrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, value.encode("utf-8"), ref.encode("utf-8"))
        return f"{_FORMAT}:" + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def decrypt(self, ref: str, text: str, row_key_id: str) -> str:
        from cryptography.exceptions import InvalidTag

        if row_key_id != self.key_id:
            raise wrong_key_error(row_key_id, self.key_id, self.where)
        form, _, body = text.partition(":")
        try:
            if form != _FORMAT:
                raise ValueError(form)
            raw = base64.urlsafe_b64decode(body.encode("ascii"))
            return self._aead.decrypt(raw[:12], raw[12:], ref.encode("utf-8")).decode("utf-8")
        except (InvalidTag, ValueError):
            raise ConfigError(f"the stored secret {ref!r} in the shared state is damaged (it does not decrypt "
                              f"with key {self.key_id}); store it again, e.g. log the account in again") from None
