"""Logins kept in the state, encrypted (``shared_secrets``; on by default with a PostgreSQL state).

Why: workers on several machines share one state but not one home. A single-use rotating refresh
token (Billit) spent by one worker must be replaced for every worker, so the token set lives in the
state; ``TokenAuth`` refreshes under the state's named lock and reads it again there, so a worker
always refreshes with the live token. The rows hold ciphertext only (``secrets_key``): whoever reads
the database without a machine's key learns nothing of the secrets.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any, Protocol

from ..secrets import SecretBackend
from ..secrets_key import (
    KEY_REF,
    SecretsCipher,
    machine_key_text,
    missing_key_error,
    new_key,
    parse_key,
    wrong_key_error,
)
from ._sql import Params, now_text

log = logging.getLogger("invoicesync.secrets")

#: A row sealed with the state's key when a machine makes it: the state has a key from then on.
_CHECK_REF = "invoicesync/key-check"
_UPSERT = ("INSERT INTO secrets (ref, key_id, value, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (ref) DO UPDATE "
           "SET key_id = excluded.key_id, value = excluded.value, updated_at = excluded.updated_at")


class SecretTable(Protocol):
    """What this needs of a state store (``SqliteStore`` and ``PostgresStore`` both are one)."""

    def _one(self, sql: str, params: Params = ()) -> Any: ...

    def _all(self, sql: str, params: Params = ()) -> list[Any]: ...

    def _exec(self, sql: str, params: Params = ()) -> int: ...

    def named_lock(self, name: str, *, timeout: float | None = 60.0) -> AbstractContextManager[None]: ...


class StateSecretBackend:
    """A ``SecretBackend`` over the state's ``secrets`` table; the key is this machine's
    (``home_backend`` keeps it, unless ``INVOICESYNC_SECRETS_KEY_FILE`` names a file)."""

    name = "state"

    def __init__(self, store: SecretTable, home_backend: SecretBackend) -> None:
        self.store = store
        self.home_backend = home_backend
        self._cipher: SecretsCipher | None = None
        self._lock = threading.Lock()

    def cipher(self, *, create: bool = False) -> SecretsCipher:
        """This machine's key. With ``create``, a state that holds no secrets yet and a machine
        without a key (and no key file named) get a new one, kept in the home's secret store."""
        with self._lock:
            if self._cipher is None:
                found = machine_key_text(self.home_backend)
                if found is None:
                    if not create:
                        row = self.store._one("SELECT key_id FROM secrets LIMIT 1")
                        raise missing_key_error(row["key_id"] if row else None)
                    found = self._new_state_key()
                self._cipher = SecretsCipher(parse_key(*found), found[1])
            return self._cipher

    def _new_state_key(self) -> tuple[str, str]:
        """A key for a state that holds no secrets yet. Under the state's lock, and marked in the
        state by a row sealed with it (``_CHECK_REF``), so that two machines storing their first
        login at once never each make a key of their own: the second one is told to import it."""
        with self.store.named_lock("secrets key", timeout=60.0):
            row = self.store._one("SELECT key_id FROM secrets LIMIT 1")
            if row is not None:
                raise missing_key_error(row["key_id"])
            text, where = new_key(), f"this home's {self.home_backend.name} secret store"
            cipher = SecretsCipher(parse_key(text, where), where)
            self.home_backend.set(KEY_REF, text)
            self.store._exec(_UPSERT, (_CHECK_REF, cipher.key_id, cipher.encrypt(_CHECK_REF, "key check"),
                                       now_text()))
        log.info("made a new secrets key (%s) for the logins in the state; copy it to the other machines "
                 "with `invoicesync secrets key export FILE`", cipher.key_id)
        return text, where

    def get(self, ref: str) -> str | None:
        row = self.store._one("SELECT key_id, value FROM secrets WHERE ref = ?", (ref,))
        if row is None:
            return None
        return self.cipher().decrypt(ref, row["value"], row["key_id"])

    def set(self, ref: str, value: str) -> None:
        cipher = self.cipher(create=True)
        self._check_same_key(cipher)
        self.store._exec(_UPSERT, (ref, cipher.key_id, cipher.encrypt(ref, value), now_text()))

    def delete(self, ref: str) -> None:
        self.store._exec("DELETE FROM secrets WHERE ref = ?", (ref,))

    def refs(self) -> Iterator[str]:
        for row in self.store._all("SELECT ref FROM secrets WHERE ref != ? ORDER BY ref", (_CHECK_REF,)):
            yield row["ref"]

    def _check_same_key(self, cipher: SecretsCipher) -> None:
        """One key per state: a machine with another key must not write rows the rest cannot read."""
        row = self.store._one("SELECT key_id FROM secrets WHERE key_id != ? LIMIT 1", (cipher.key_id,))
        if row is not None:
            raise wrong_key_error(row["key_id"], cipher.key_id, cipher.where)


def copy_secrets(source: SecretBackend, target: SecretBackend, refs: list[str]) -> list[str]:
    """Copy ``refs`` that ``source`` holds into ``target`` (the home's logins into the state);
    the refs copied. The machine's key itself is never copied into the state."""
    copied = []
    for ref in refs:
        if ref in (KEY_REF, _CHECK_REF):
            continue
        value = source.get(ref)
        if value is not None:
            target.set(ref, value)
            copied.append(ref)
    return copied
