"""``secrets``: the key that encrypts the logins kept in a shared state, and moving a home's logins
into that state (docs/scale-out.md, "Logins in the shared state")."""

from __future__ import annotations

import os
from pathlib import Path

import click

from ..errors import ConfigError, PluginError
from ..models import Account
from ..plugins import Plugins
from ..secrets import FileBackend, SecretBackend, choose_backend
from ..secrets_key import KEY_REF, SecretsCipher, machine_key_text, new_key, parse_key
from ..workspace import Workspace
from ._common import State, handle_errors, json_option, pass_state, print_json


@click.group()
def secrets() -> None:
    """Logins kept in a shared state: this machine's key (`secrets key export|import`), and copying
    this home's logins into the state (`secrets migrate`).

    With a PostgreSQL state (or shared_secrets = true) the logins live in the state, encrypted with
    a key each machine keeps in its home (or in the file INVOICESYNC_SECRETS_KEY_FILE names).
    """


@secrets.group()
def key() -> None:
    """This machine's key for the logins in the shared state: a new one, export it to a file, import it."""


def _state_backend(workspace: Workspace) -> SecretBackend:
    from ..state._secrets import StateSecretBackend

    backend = workspace.secret_backend
    if not isinstance(backend, StateSecretBackend):
        raise ConfigError("logins are kept in this home, not in the state (shared_secrets is off: the state is the "
                          "home's state.db); set state_url, or shared_secrets = true, first")
    return backend


def _write_new(file: Path, text: str) -> None:
    """``text`` into a new file readable by its owner only (a key is never written over)."""
    try:
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(f"{file} exists already; choose a new file (a key is never written over)") from None
    with os.fdopen(fd, "w") as handle:
        handle.write(text.strip() + "\n")


@key.command("new")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@handle_errors
def new_key_file(file: Path) -> None:
    """Write a new key to FILE (mode 0600, never printed), before any login is stored: the secret
    file every worker mounts as INVOICESYNC_SECRETS_KEY_FILE (deploy/compose.yaml)."""
    text = new_key()
    _write_new(file, text)
    click.echo(f"Wrote a new key, {SecretsCipher(parse_key(text, str(file)), str(file)).key_id}, to {file}. "
               f"Keep it secret, and mount it on every machine that shares the state.")


@key.command("export")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@pass_state
@handle_errors
def export_key(obj: State, file: Path) -> None:
    """Write this machine's key to FILE (mode 0600, never printed), for `secrets key import` on
    another machine or a compose secret. A state that holds no logins yet gets a new key."""
    from ..state._secrets import StateSecretBackend

    backend = _state_backend(obj.workspace())
    assert isinstance(backend, StateSecretBackend)
    cipher = backend.cipher(create=True)
    found = machine_key_text(backend.home_backend)
    assert found is not None
    _write_new(file, found[0])
    click.echo(f"Wrote key {cipher.key_id} to {file}. Keep it secret; `invoicesync secrets key import {file}` "
               f"on each machine that shares the state, or mount it as INVOICESYNC_SECRETS_KEY_FILE.")


@key.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_state
@handle_errors
def import_key(obj: State, file: Path) -> None:
    """Keep the key in FILE as this machine's (in the home's keyring, else its secrets.json)."""
    from ..workspace import default_home

    text = file.read_text().strip()
    new_id = SecretsCipher(parse_key(text, str(file)), str(file)).key_id
    home_backend = choose_backend(obj.home or default_home())
    old = home_backend.get(KEY_REF)
    if old and old.strip() != text:
        old_id = SecretsCipher(parse_key(old, "the home's key"), "").key_id
        raise ConfigError(f"this home has another key ({old_id}) already; logins stored with it would no longer "
                          f"be readable here. Remove it from the home's secret store first if {new_id} is right")
    home_backend.set(KEY_REF, text)
    click.echo(f"This machine now uses key {new_id} for the logins in the shared state.")


@secrets.command()
@json_option
@pass_state
@handle_errors
def migrate(obj: State, as_json: bool) -> None:
    """Copy this home's logins (keyring or secrets.json) into the shared state, encrypted.

    Safe to run again: a login already in the state is replaced by the home's copy, so run it only
    before workers use the state (a worker may have rotated a token in the state since).
    """
    workspace = obj.workspace()
    copied = migrate_home_secrets(choose_backend(workspace.home), _state_backend(workspace), workspace.accounts(),
                                  workspace.plugins)
    if as_json:
        print_json({"copied": copied})
        return
    click.echo(f"Copied {len(copied)} secret(s) of this home into the state"
               + (f": {', '.join(copied)}" if copied else "") + ".")


def migrate_home_secrets(source: SecretBackend, target: SecretBackend, accounts: list[Account],
                         plugins: Plugins) -> list[str]:
    """Copy every login ``source`` keeps into ``target``; the names copied (never the values)."""
    from ..state._secrets import StateSecretBackend, copy_secrets

    if isinstance(source, FileBackend | StateSecretBackend):
        refs = list(source.refs())
    else:  # a keyring cannot list its entries: ask for each account's known secret names
        refs = []
        for account in accounts:
            names = {"oauth_token", "client_secret", "api_key"}
            try:
                names |= set(plugins.get(account.plugin).info.secrets)
            except PluginError:
                pass  # its plugin is not installed here: the usual names only
            refs += [f"{account.name}/{name}" for name in sorted(names)]
    return copy_secrets(source, target, refs)
