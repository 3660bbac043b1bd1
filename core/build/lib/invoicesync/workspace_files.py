"""The home folder on disk: created private, checked for writability, its state opened read-only
when this user may only read it (reading commands still work on a read-only home)."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ConfigError
from .state import SqliteStore, StateStore


def home_is_writable(home: Path) -> bool:
    """Whether this user can create files in ``home`` and write its ``state.db``. ``os.access``
    also answers "no" on a read-only mount, where even root cannot write."""
    if not home.exists():
        return home.parent.exists() and os.access(home.parent, os.W_OK | os.X_OK)
    state = home / "state.db"
    return os.access(home, os.W_OK | os.X_OK) and (not state.exists() or os.access(state, os.W_OK))


def prepare_home(home: Path) -> None:
    """Create ``home`` (private) for a command that writes, or say in one line why it cannot be."""
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the home folder {home} ({exc.strerror or exc}); create it, or "
                          f"choose another with --home / INVOICESYNC_HOME") from None
    if not home_is_writable(home):
        what = home / "state.db" if os.access(home, os.W_OK | os.X_OK) else home
        raise ConfigError(f"{what} is not writable by this user, and this command writes there; run it as the "
                          f"owner of {home}, or make it writable (chown/chmod, or a writable mount). Reading "
                          f"commands (accounts, documents) work without writing")
    if os.stat(home).st_uid == os.geteuid() and os.stat(home).st_mode & 0o077:
        os.chmod(home, 0o700)  # secrets.json and the library are nobody else's business


def open_state_read_only(home: Path) -> StateStore:
    if not (home / "state.db").is_file():
        raise ConfigError(f"{home} has no state.db yet and is not writable by this user, so there is nothing "
                          f"to read; run `invoicesync sync` (or `connect`) as the owner of {home} first")
    return SqliteStore(home / "state.db", read_only=True)
