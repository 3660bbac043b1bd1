"""Misuse gets one line and exit 2, never a traceback (whose exit 1 would read as "partial"):
a damaged or read-only state, a home this user may not write, a config file of the wrong shape.
Reading commands still work on a home this user may only read."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from invoicesync.cli import cli
from invoicesync.plugins import Plugins
from invoicesync.testing import MemorySource, MemoryTarget
from invoicesync.workspace import Workspace

NOBODY = 65534


def invoke(*args: str, plugins: Plugins | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), obj=plugins)


def assert_one_line_fatal(result: Result, *expected: str) -> None:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # not an uncaught exception
    assert "Traceback" not in result.output
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1, result.output
    for text in expected:
        assert text in result.output, result.output


@pytest.mark.parametrize("content", [b"this is not a database, just some text\n" * 200,
                                     b"SQLite format 3\x00" + b"\xff" * 4000])
def test_a_damaged_state_database_is_one_line_naming_the_file(invoicesync_home: Path, content: bytes) -> None:
    invoicesync_home.mkdir()
    (invoicesync_home / "state.db").write_bytes(content)
    for command in (["accounts"], ["documents"], ["sync"], ["connect", "localfs", "--root", "x"]):
        result = invoke(*command)
        assert_one_line_fatal(result, str(invoicesync_home / "state.db"), "back-up")


# -- TOML of the wrong shape -----------------------------------------------------------------

@pytest.mark.parametrize(("toml", "expected"), [
    ('accounts = ["archive"]\n', "`accounts` must be a table of accounts"),
    ('accounts = "archive"\n', "`accounts` must be a table of accounts"),
    ('[accounts]\narchive = "localfs"\n', "[accounts.archive] must be a table"),
    ('[accounts.archive]\nplugin = 3\n', "needs a `plugin = \"...\"` line"),
    ('[accounts.archive]\nplugin = "localfs"\nsettings = "root=/srv"\n', "`settings` must be a table"),
    ('[accounts.archive]\nplugin = "localfs"\ncompanies = "123"\n', "`companies` must be a list"),
])
def test_a_config_file_of_the_wrong_shape_is_one_line_naming_the_file(
        invoicesync_home: Path, tmp_path: Path, toml: str, expected: str) -> None:
    config = tmp_path / "invoicesync.toml"
    config.write_text(toml)
    for command in (["accounts"], ["documents"], ["sync"]):
        assert_one_line_fatal(invoke("--config", str(config), *command), str(config), expected)


# -- a config account whose plugin is not installed: a per-account problem -------------------

def test_a_config_account_with_a_missing_plugin_is_reported_and_the_rest_still_syncs(
        cli_plugins: Plugins, memory_plugins: tuple[Plugins, MemorySource, MemoryTarget],
        invoicesync_home: Path, tmp_path: Path) -> None:
    (tmp_path / "invoicesync.toml").write_text('[accounts.books]\nplugin = "nosuchplugin"\n')
    assert invoke("connect", "memory", plugins=cli_plugins).exit_code == 0
    assert invoke("connect", "memtarget", plugins=cli_plugins).exit_code == 0

    listing = invoke("accounts", plugins=cli_plugins)
    assert listing.exit_code == 0, listing.output
    assert "books" in listing.output and "no plugin called 'nosuchplugin' is installed" in listing.output
    assert "memory" in listing.output and "memtarget" in listing.output

    result = invoke("sync", plugins=cli_plugins)
    assert result.exit_code == 1, result.output  # partial: one account could not run
    assert "books" in result.output and "nosuchplugin" in result.output
    assert len(memory_plugins[2].stored) == 25  # the others synced

    documents = invoke("documents", plugins=cli_plugins)
    assert documents.exit_code == 0 and "memtarget:delivered" in documents.output
    assert "account books is unavailable" in documents.output


# -- a home this user may not write ------------------------------------------------------------
# Root ignores file modes, so "read-only" is made in one of two ways: by mode, for a user that is
# not the owner (nobody when we are root, else ourselves), or by a read-only bind mount (root only),
# which even root cannot write through.

@functools.cache
def _setpriv_nobody() -> list[str] | None:
    """The prefix that runs a command as nobody, if we are root and nobody can run this venv."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        return None
    prefix = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    probe = subprocess.run([*prefix, sys.executable, "-c", "import invoicesync"], capture_output=True,
                           cwd="/", timeout=60)
    return prefix if probe.returncode == 0 else None


@functools.cache
def _can_mount() -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    probe = Path(tempfile.mkdtemp(prefix="invoicesync-mount-probe-"))
    try:
        if subprocess.run(["mount", "--bind", probe, probe], capture_output=True).returncode != 0:
            return False
        subprocess.run(["umount", probe], check=True)
        return True
    finally:
        probe.rmdir()


class ReadOnly:
    """Makes paths read-only for the user ``run`` runs the CLI as."""

    def __init__(self, how: str, shared: Path) -> None:
        self.how = how
        self.shared = shared
        self.mounts: list[Path] = []

    def make_read_only(self, path: Path) -> None:
        if self.how == "mode":
            if os.geteuid() == 0:  # nobody runs the CLI: root's own files are read-only to it
                os.chmod(path, 0o755 if path.is_dir() else 0o644)
            else:
                os.chmod(path, 0o555 if path.is_dir() else 0o444)
            return
        subprocess.run(["mount", "--bind", path, path], check=True)
        self.mounts.append(path)
        subprocess.run(["mount", "-o", "remount,ro,bind", path], check=True)

    def give_away(self, path: Path) -> None:
        """``path`` (a folder) belongs to the user the CLI runs as, and is writable."""
        if self.how == "mode" and os.geteuid() == 0:
            os.chown(path, NOBODY, NOBODY)
        os.chmod(path, 0o755)

    def run(self, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.shared),
               "INVOICESYNC_HOME": str(home), "INVOICESYNC_SECRETS": "file", "INVOICESYNC_LOAD_PLUGINS": "localfs"}
        prefix = _setpriv_nobody() if self.how == "mode" else None
        command = [*(prefix or []), sys.executable, "-m", "invoicesync", *args]
        return subprocess.run(command, env=env, cwd=self.shared, capture_output=True, text=True, timeout=120)

    def undo(self) -> None:
        for path in reversed(self.mounts):
            subprocess.run(["umount", path], check=False)
        for root, dirs, _files in os.walk(self.shared):  # give write access back, so it can be removed
            for name in dirs:
                os.chmod(os.path.join(root, name), 0o755)
        shutil.rmtree(self.shared, ignore_errors=True)


@pytest.fixture(params=["mode", "mount"])
def read_only(request: pytest.FixtureRequest) -> Iterator[ReadOnly]:
    if request.param == "mode" and os.geteuid() == 0 and _setpriv_nobody() is None:
        pytest.skip("as root, needs setpriv and a venv that nobody (65534) can read")
    if request.param == "mount" and not _can_mount():
        pytest.skip("needs root and bind mounts")
    shared = Path(tempfile.mkdtemp(prefix="invoicesync-misuse-"))  # tmp_path is private to its owner
    shared.chmod(0o755)
    helper = ReadOnly(request.param, shared)
    yield helper
    helper.undo()


def make_home(shared: Path) -> Path:
    """A home with one target account and nothing delivered, made by its owner (us)."""
    home = shared / "home"
    runner = CliRunner(env={"INVOICESYNC_HOME": str(home), "INVOICESYNC_SECRETS": "file"})
    result = runner.invoke(cli, ["connect", "localfs", "--name", "archive", "--root", str(shared / "out")])
    assert result.exit_code == 0, result.output
    with Workspace.open(home) as workspace:
        assert [a.name for a in workspace.accounts()] == ["archive"]
    return home


def assert_fails_in_one_line(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for text in expected:
        assert text in lines[0], lines[0]


def test_a_home_this_user_cannot_write_still_reads_and_refuses_writes_in_one_line(read_only: ReadOnly) -> None:
    home = make_home(read_only.shared)
    read_only.make_read_only(home / "state.db")
    read_only.make_read_only(home)

    accounts = read_only.run("accounts", home=home)
    assert accounts.returncode == 0, accounts.stderr
    assert "archive" in accounts.stdout and "Traceback" not in accounts.stderr
    documents = read_only.run("documents", home=home)
    assert documents.returncode == 0, documents.stderr
    assert "No documents" in documents.stdout

    assert_fails_in_one_line(read_only.run("sync", home=home), str(home), "not writable")
    assert_fails_in_one_line(read_only.run("connect", "localfs", "--name", "b", "--root", "x", home=home),
                             str(home), "not writable")


def test_a_read_only_state_database_in_a_writable_home(read_only: ReadOnly) -> None:
    home = make_home(read_only.shared)
    read_only.give_away(home)
    read_only.make_read_only(home / "state.db")

    accounts = read_only.run("accounts", home=home)
    assert accounts.returncode == 0 and "archive" in accounts.stdout, accounts.stderr
    assert_fails_in_one_line(read_only.run("sync", home=home), str(home / "state.db"), "not writable")
    assert_fails_in_one_line(read_only.run("disconnect", "archive", home=home), str(home / "state.db"))


def test_a_home_that_cannot_be_created_is_one_line(read_only: ReadOnly) -> None:
    parent = read_only.shared / "locked"
    parent.mkdir()
    read_only.make_read_only(parent)
    home = parent / "home"
    assert_fails_in_one_line(read_only.run("sync", home=home), str(home))
    assert_fails_in_one_line(read_only.run("accounts", home=home), str(home))
