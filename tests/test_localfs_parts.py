"""localfs temp files are named after their writer: a run removes a killed writer's ``.part`` file
at its start, wherever it is under the root, and leaves a live writer's alone."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from invoicesync.accounts import connect
from invoicesync.builtins import _fsio, localfs
from invoicesync.context import NonInteractiveUI
from invoicesync.models import Company, DeliveryStatus, Direction, Document, PushRequest
from invoicesync.pipeline import EXIT_OK, run_sync
from invoicesync.plugins import Plugins
from invoicesync.processes import ProcessIdentity, started_of
from invoicesync.testing import MemorySource, MemoryTarget
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


def invoice(n: int) -> Document:
    company = Company(id="c1", name="Acme BV")
    return Document(id=Document.make_id("memory", "memory", company.id, str(n)), source="memory",
                    account="memory", company=company, source_id=str(n), number=f"INV-{n:04d}",
                    direction=Direction.PURCHASE,
                    issue_date=date(2026, 1, 1), amount_incl_vat=Decimal("121.00"))


def test_a_worker_sweeps_the_root_once_not_per_task_and_a_restarted_one_sweeps_again(
        memory_workspace: Workspace, workspace_factory: Callable[..., Workspace],
        memory_plugins: tuple[Plugins, MemorySource, MemoryTarget], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A Celery worker makes a context per export task from one workspace: a walk of the whole
    # root per task made each task O(files already written).
    walks: list[str] = []
    sweep = _fsio.sweep_stale_parts
    monkeypatch.setattr(localfs, "sweep_stale_parts", lambda root: walks.append(root) or sweep(root))
    root = tmp_path / "out"
    connect(memory_workspace, "localfs", ui=NonInteractiveUI(), name="folder",
            settings={"root": str(root), "template": "{company}/{year}/{number}.{ext}"})
    account = memory_workspace.account("folder")
    for task in range(3):
        ctx = memory_workspace.context(account)
        try:
            [delivery] = localfs.push_documents(account, [PushRequest(document=invoice(task))], ctx)
        finally:
            ctx.close()
        assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert walks == [str(root)]

    # The worker is killed mid-write; the one that replaces it (a new process, a new workspace)
    # removes what it left, in a folder no task writes to again.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_started = started_of(dead.pid)
    dead.wait()
    killed = root / "Vilbox BV/2025" / part_name(dead.pid, dead_started)
    killed.parent.mkdir(parents=True)
    killed.write_bytes(b"half a PDF")
    memory_workspace.close()
    restarted = workspace_factory(plugins=memory_plugins[0])
    ctx = restarted.context(account)
    try:
        list(localfs.push_documents(account, [PushRequest(document=invoice(0))], ctx))
    finally:
        ctx.close()
    assert walks == [str(root)] * 2 and not killed.exists()
