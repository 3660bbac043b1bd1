"""Misuse gets one line and exit 2, never a traceback (whose exit 1 would read as "partial"):
a damaged or read-only state, a home this user may not write, a config file of the wrong shape.
Reading commands still work on a home this user may only read."""

from __future__ import annotations

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


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


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
    assert invoke("connect", "memory").exit_code == 0
    assert invoke("connect", "memtarget").exit_code == 0

    listing = invoke("accounts")
    assert listing.exit_code == 0, listing.output
    assert "books" in listing.output and "no plugin called 'nosuchplugin' is installed" in listing.output
    assert "memory" in listing.output and "memtarget" in listing.output

    result = invoke("sync")
    assert result.exit_code == 1, result.output  # partial: one account could not run
    assert "books" in result.output and "nosuchplugin" in result.output
    assert len(memory_plugins[2].stored) == 25  # the others synced

    documents = invoke("documents")
    assert documents.exit_code == 0 and "memtarget:delivered" in documents.output
    assert "account books is unavailable" in documents.output


# -- a home this user may not write (tested as an unprivileged user: root ignores file modes) -

@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder an unprivileged user can reach (pytest's tmp_path is private to its owner)."""
    path = Path(tempfile.mkdtemp(prefix="invoicesync-misuse-"))
    path.chmod(0o755)
    yield path
    for root, dirs, _files in os.walk(path):  # give write access back, so it can be removed
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o755)
    shutil.rmtree(path, ignore_errors=True)


def run_as_other_user(args: list[str], home: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The real ``invoicesync`` as a user who does not own ``home``: nobody when we are root,
    else ourselves (the home is then made read-only by its mode)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(cwd), "INVOICESYNC_HOME": str(home),
           "INVOICESYNC_SECRETS": "file", "INVOICESYNC_LOAD_PLUGINS": "localfs"}
    command = [sys.executable, "-m", "invoicesync", *args]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("needs setpriv to run as an unprivileged user")
        command = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *command]
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def make_home(shared_dir: Path) -> Path:
    """A home with one target account and nothing delivered, made by its owner (us)."""
    home = shared_dir / "home"
    runner = CliRunner(env={"INVOICESYNC_HOME": str(home), "INVOICESYNC_SECRETS": "file"})
    result = runner.invoke(cli, ["connect", "localfs", "--name", "archive", "--root", str(shared_dir / "out")])
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


def test_a_home_this_user_cannot_write_still_reads_and_refuses_writes_in_one_line(shared_dir: Path) -> None:
    home = make_home(shared_dir)
    os.chmod(home, 0o555 if os.geteuid() else 0o755)  # root: owned by root, so read-only for nobody
    os.chmod(home / "state.db", 0o444 if os.geteuid() else 0o644)

    accounts = run_as_other_user(["accounts"], home, shared_dir)
    assert accounts.returncode == 0, accounts.stderr
    assert "archive" in accounts.stdout and "Traceback" not in accounts.stderr
    documents = run_as_other_user(["documents"], home, shared_dir)
    assert documents.returncode == 0, documents.stderr
    assert "No documents" in documents.stdout

    assert_fails_in_one_line(run_as_other_user(["sync"], home, shared_dir), str(home), "not writable")
    assert_fails_in_one_line(run_as_other_user(["connect", "localfs", "--name", "b", "--root", "x"], home,
                                               shared_dir), str(home), "not writable")


def test_a_read_only_state_database_in_a_writable_home(shared_dir: Path) -> None:
    home = make_home(shared_dir)
    if os.geteuid() == 0:
        os.chown(home, NOBODY, NOBODY)  # nobody owns the folder, root keeps the database
    os.chmod(home, 0o755)
    os.chmod(home / "state.db", 0o444)

    accounts = run_as_other_user(["accounts"], home, shared_dir)
    assert accounts.returncode == 0 and "archive" in accounts.stdout, accounts.stderr
    assert_fails_in_one_line(run_as_other_user(["sync"], home, shared_dir), str(home / "state.db"),
                             "not writable")
    assert_fails_in_one_line(run_as_other_user(["disconnect", "archive"], home, shared_dir),
                             str(home / "state.db"))


def test_a_home_that_cannot_be_created_is_one_line(shared_dir: Path) -> None:
    parent = shared_dir / "locked"
    parent.mkdir(mode=0o555)
    home = parent / "home"
    assert_fails_in_one_line(run_as_other_user(["sync"], home, shared_dir), str(home))
    assert_fails_in_one_line(run_as_other_user(["accounts"], home, shared_dir), str(home))
