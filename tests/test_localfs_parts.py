"""localfs temp files are named after their writer: a run removes a killed writer's ``.part`` file
at its start, wherever it is under the root, and leaves a live writer's alone."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from invoicesync.accounts import connect
from invoicesync.builtins import _fsio
from invoicesync.context import NonInteractiveUI
from invoicesync.pipeline import EXIT_OK, run_sync
from invoicesync.processes import ProcessIdentity, started_of
from invoicesync.workspace import Workspace


def part_name(pid: int, started: str | None) -> str:
    machine = hashlib.sha256(ProcessIdentity.current().host.encode()).hexdigest()[:8]
    return f"{_fsio.PART_PREFIX}{machine}-{pid}-{started or 'x'}-abc123{_fsio.PART_SUFFIX}"


@pytest.fixture
def live_writer() -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    yield child
    child.kill()
    child.wait()


def test_a_run_removes_a_killed_writers_part_anywhere_and_leaves_live_writers_parts(
        memory_workspace: Workspace, tmp_path: Path, live_writer: subprocess.Popen[bytes]) -> None:
    root = tmp_path / "out"
    elsewhere = root / "Vilbox BV/2025/sales"  # a folder this run writes nothing to
    elsewhere.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_started = started_of(dead.pid)
    dead.wait()
    killed = elsewhere / part_name(dead.pid, dead_started)
    reused = elsewhere / part_name(live_writer.pid, "1")  # its pid now names a later process
    live = elsewhere / part_name(live_writer.pid, started_of(live_writer.pid))
    for part in (killed, reused, live):
        part.write_bytes(b"half a PDF")  # fresh: only the writer's identity tells them apart
    connect(memory_workspace, "localfs", ui=NonInteractiveUI(), name="folder",
            settings={"root": str(root), "template": "{company}/{year}/{number}.{ext}"})
    assert run_sync(memory_workspace, accounts=["memory", "folder"]).exit_code == EXIT_OK
    assert not killed.exists() and not reused.exists() and live.exists()
    assert not [p for p in root.rglob("*.part") if p != live]  # its own temp files are all renamed


def test_this_processs_own_part_files_are_never_stale(tmp_path: Path) -> None:
    me = ProcessIdentity.current()
    own = tmp_path / part_name(me.pid, me.started)
    own.write_bytes(b"a write in progress")
    assert _fsio.sweep_stale_parts(str(tmp_path)) == 0 and own.exists()
    target = tmp_path / "a/b.pdf"
    assert _fsio.write_if_different(str(target), hashlib.sha256(b"x").hexdigest(), lambda: [b"x"], umask=0o022)
    assert target.read_bytes() == b"x" and own.exists()
