"""``TokenAuth`` keeps the token in memory: the store is not read per request, yet a refresh made
by another process (another ``TokenAuth`` over the same secrets) is picked up, and a single-use
refresh token is never spent when the stored one was already replaced."""

from __future__ import annotations

import time
from collections.abc import Hashable
from pathlib import Path

import httpx
import pytest
from invoicesync.http import TokenAuth, TokenSet
from invoicesync.secrets import AccountSecrets, FileBackend

KEY = "oauth_token"


class CountingFile(FileBackend):
    """The 0600 secrets file, counting how often a value is read from it."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.reads = 0

    def get(self, ref: str) -> str | None:
        self.reads += 1
        return super().get(ref)


class MarklessSlot:
    """A store that cannot tell cheaply whether a value changed (as the keyring): no ``version``."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.reads = 0
        self.account = "keyring-books"  # the lock TokenAuths over one login share

    def get(self, key: str) -> str | None:
        self.reads += 1
        return self.values.get(key)

    def set(self, key: str, value: str) -> None:
        self.values[key] = value


def token(access: str, refresh: str, lifetime: float = 3600.0) -> TokenSet:
    return TokenSet(access_token=access, refresh_token=refresh, expires_at=time.time() + lifetime)


def sent(auth: TokenAuth) -> str:
    request = httpx.Request("GET", "https://svc.test/x")
    auth.apply(request)
    return request.headers["Authorization"]


def test_apply_reads_the_store_once_not_per_request(tmp_path: Path) -> None:
    backend = CountingFile(tmp_path / "secrets.json")
    secrets = AccountSecrets(backend, "books")
    secrets.set(KEY, token("a1", "r1").model_dump_json())
    auth = TokenAuth(secrets, lambda old: token("never", "never"))
    assert [sent(auth) for _ in range(50)] == ["Bearer a1"] * 50
    assert backend.reads == 1


def test_a_refresh_by_another_process_is_seen_on_the_next_request(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    ours_backend = CountingFile(path)
    ours = TokenAuth(AccountSecrets(ours_backend, "books"), lambda old: token("never", "never"), early=10)
    # Another process: its own FileBackend over the same file, its own TokenAuth.
    theirs_secrets = AccountSecrets(FileBackend(path), "books")
    theirs_secrets.set(KEY, token("a1", "r1", lifetime=30).model_dump_json())
    theirs = TokenAuth(theirs_secrets, lambda old: token("a2", "r2"), early=60)
    assert sent(ours) == "Bearer a1"
    assert sent(theirs) == "Bearer a2"  # expiring within `early`: they refresh and store a2/r2
    assert sent(ours) == "Bearer a2"
    assert sent(ours) == "Bearer a2"
    assert ours_backend.reads == 2  # once at first, once after their write


def test_without_version_marks_a_refused_token_adopts_the_stored_one_without_spending_it() -> None:
    slot = MarklessSlot()
    slot.set(KEY, token("a1", "r1").model_dump_json())
    spent: list[str] = []

    def ours_refresh(old: TokenSet) -> TokenSet:
        spent.append(old.refresh_token or "")
        return token("a3", "r3")

    ours = TokenAuth(slot, ours_refresh)
    assert sent(ours) == "Bearer a1"
    TokenAuth(slot, lambda old: token("a2", "r2")).store(token("a2", "r2"))  # the other process refreshed
    reads = slot.reads
    assert sent(ours) == "Bearer a1"  # the keyring is not read per request...
    assert slot.reads == reads
    assert ours.refresh() is True  # ...but a 401 reads it, under the lock, before spending r1
    assert sent(ours) == "Bearer a2"
    assert spent == []  # r1 (spent by the other process) was never sent


def test_an_expiring_cached_token_is_checked_against_the_store_before_refreshing() -> None:
    slot = MarklessSlot()
    slot.set(KEY, token("a1", "r1", lifetime=30).model_dump_json())
    spent: list[str] = []

    def ours_refresh(old: TokenSet) -> TokenSet:
        spent.append(old.refresh_token or "")
        return token("a3", "r3")

    ours = TokenAuth(slot, ours_refresh, early=10)
    assert sent(ours) == "Bearer a1"
    slot.set(KEY, token("a2", "r2").model_dump_json())  # another process refreshed meanwhile
    ours.early = 60  # now a1 counts as expiring
    assert sent(ours) == "Bearer a2"
    assert spent == []


def test_our_own_refresh_is_used_at_once_and_stored_first() -> None:
    slot = MarklessSlot()
    slot.set(KEY, token("a1", "r1", lifetime=30).model_dump_json())
    ours = TokenAuth(slot, lambda old: token("a2", "r2"), early=60)
    assert sent(ours) == "Bearer a2"
    assert TokenSet.model_validate_json(slot.values[KEY]).refresh_token == "r2"
    assert [sent(ours) for _ in range(5)] == ["Bearer a2"] * 5


def test_the_version_mark_changes_with_each_write_and_follows_an_environment_override(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = AccountSecrets(FileBackend(tmp_path / "secrets.json"), "books")
    marks: list[Hashable | None] = [secrets.version(KEY)]
    for value in ("a", "b", "a"):  # the same size and content again is still a new write
        secrets.set(KEY, value)
        marks.append(secrets.version(KEY))
    assert len(set(marks)) == 4 and secrets.version(KEY) == marks[-1]
    monkeypatch.setenv("INVOICESYNC_BOOKS_OAUTH_TOKEN", token("env", "r").model_dump_json())
    auth = TokenAuth(secrets, lambda old: token("never", "never"))
    assert sent(auth) == "Bearer env"
