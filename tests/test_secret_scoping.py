"""Keyring entries belong to one home; secrets never leak, not even half of one inside a
validation error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from click.testing import CliRunner
from invoicesync import Account, Company, Context, Document, DocumentRef, PluginKind, hookimpl
from invoicesync.cli import cli
from invoicesync.http import TokenAuth, TokenSet
from invoicesync.plugins import Plugins
from invoicesync.secrets import FRAGMENT, redact, register_secret, safe_error_text
from invoicesync.testing import MemorySource, MemoryTarget
from invoicesync.workspace import Workspace
from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError
from pydantic import ValidationError


class MemoryKeyring(KeyringBackend):
    priority = 10  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.entries.pop((service, username), None) is None:
            raise PasswordDeleteError(username)


@pytest.fixture
def memory_keyring(monkeypatch: pytest.MonkeyPatch) -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    monkeypatch.setenv("INVOICESYNC_SECRETS", "keyring")
    yield backend
    keyring.set_keyring(previous)


def open_home(path: Path, plugins: Plugins) -> Workspace:
    return Workspace.open(path, plugins=plugins)


def test_two_homes_on_one_desktop_keep_their_own_secrets(
        memory_keyring: MemoryKeyring, tmp_path: Path,
        memory_plugins: tuple[Plugins, MemorySource, MemoryTarget]) -> None:
    plugins = memory_plugins[0]
    with open_home(tmp_path / "work", plugins) as work, open_home(tmp_path / "home", plugins) as private:
        assert work.secret_backend.name == private.secret_backend.name == "keyring"
        work.secrets("billit").set("api_key", "work-key-1234567")
        assert private.secrets("billit").get("api_key") is None  # not the other home's
        private.secrets("billit").set("api_key", "home-key-7654321")
        assert work.secrets("billit").get("api_key") == "work-key-1234567"

        private.secrets("billit").delete("api_key")  # what `disconnect` does
        assert work.secrets("billit").get("api_key") == "work-key-1234567"
        assert private.secrets("billit").get("api_key") is None

    # The id that names the entries lives in the home, so it stays the same on the next open.
    with open_home(tmp_path / "work", plugins) as work:
        assert work.secrets("billit").get("api_key") == "work-key-1234567"
    assert (tmp_path / "work" / "home-id").read_text().strip() != (tmp_path / "home" / "home-id").read_text().strip()


def test_an_unscoped_entry_from_before_is_migrated_once(
        memory_keyring: MemoryKeyring, tmp_path: Path,
        memory_plugins: tuple[Plugins, MemorySource, MemoryTarget]) -> None:
    memory_keyring.set_password("invoicesync", "billit/api_key", "old-key-abcdefgh")
    plugins = memory_plugins[0]
    with open_home(tmp_path / "first", plugins) as first, open_home(tmp_path / "second", plugins) as second:
        assert first.secrets("billit").get("api_key") == "old-key-abcdefgh"
        assert ("invoicesync", "billit/api_key") not in memory_keyring.entries  # moved, not copied
        assert second.secrets("billit").get("api_key") is None
        assert first.secrets("billit").get("api_key") == "old-key-abcdefgh"


# -- redaction of validation errors and fragments -----------------------------------------------

BARE_TOKEN = "ya29.a0AfH6SMBxQwErTyUiOpAsDfGhJkLzXcVbNm1234567890abcdefXYZ"


class TokenSource(MemorySource):
    """A source whose fetch reads its OAuth token set the way the real plugins do."""

    @hookimpl
    def fetch_document(self, account: Account, company: Company, ref: DocumentRef, ctx: Context) -> Document:
        TokenAuth(ctx.secrets, refresh=lambda token: token).current()
        return super().fetch_document(account, company, ref, ctx)  # type: ignore[no-any-return]


@pytest.fixture
def token_plugins(invoicesync_home: Path) -> Plugins:
    return Plugins.from_objects({"tok": (PluginKind.SOURCE, TokenSource(2)),
                                 "memtarget": (PluginKind.TARGET, MemoryTarget())})


def fragments(secret: str) -> list[str]:
    return [secret[i:i + FRAGMENT] for i in range(len(secret) - FRAGMENT + 1)]


def test_a_bare_token_in_the_environment_is_not_half_printed(token_plugins: Plugins,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVOICESYNC_TOK_OAUTH_TOKEN", BARE_TOKEN)
    runner = CliRunner()
    everything = ""
    for args in (["-vv", "connect", "tok"], ["-vv", "connect", "memtarget"], ["-vv", "sync"],
                 ["-vv", "sync", "--json"]):
        result = runner.invoke(cli, args, obj=token_plugins)
        everything += result.output
    assert "Invalid JSON" in everything  # the failure itself is reported…
    leaked = [f for f in fragments(BARE_TOKEN) if f in everything]
    assert not leaked, f"pieces of the token were printed: {leaked[:3]}"  # …without any piece of the token


def test_redact_removes_prefixes_suffixes_and_middles_of_a_secret() -> None:
    secret = "s3cr3t-Token-Value-0123456789-zyxw"
    register_secret(secret)
    text = f"start={secret[:12]}... middle {secret[10:20]} end=...{secret[-9:]} short {secret[:5]}"
    cleaned = redact(text)
    assert not any(f in cleaned for f in fragments(secret))
    assert cleaned.startswith("start=***...") and cleaned.endswith(f"short {secret[:5]}")


def test_a_validation_error_is_described_without_its_input() -> None:
    try:
        TokenSet.model_validate({"access_token": 12, "refresh_token": ["never", "echo", "me"]})
    except ValidationError as exc:
        text = safe_error_text(exc)
    assert "access_token" in text and "refresh_token" in text
    assert "never" not in text and "12" not in text


def test_a_traceback_in_the_log_is_redacted_too(capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    from invoicesync.cli._common import setup_logging

    secret = "tb-secret-0123456789abcdef"
    register_secret(secret)
    setup_logging(1)
    try:
        raise RuntimeError(f"token was {secret[:14]}...")
    except RuntimeError:
        logging.getLogger("invoicesync.test").exception("it broke")
    logged = capsys.readouterr().err
    assert "RuntimeError: token was ***" in logged and "Traceback" in logged
    assert not any(f in logged for f in fragments(secret))
