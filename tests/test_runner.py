"""The runner in real processes: one per home (a lock that dies with its holder), exactly once even
when two get in anyway (claims), a safe stop on SIGINT/SIGTERM, and a full disk that never hangs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result
from invoicesync import Document
from invoicesync.pipeline import EXIT_BUSY, EXIT_OK, EXIT_PARTIAL, run_sync
from invoicesync.plugins import Plugins
from invoicesync.state import SqliteStore
from invoicesync.state._sql import SqlStore
from invoicesync.testing import MemorySource, MemoryTarget
from invoicesync.workspace import Workspace

DRIVER = Path(__file__).with_name("runner_driver.py")
HOLDER = """
import sys, time
from invoicesync.state import RunnerInfo, SqliteStore
hold = SqliteStore(sys.argv[1]).runner_lock(RunnerInfo.current("holder-for-test"))
hold.__enter__()
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"""


@pytest.fixture
def lock_holder(invoicesync_home: Path) -> Iterator[Callable[[float], subprocess.Popen[str]]]:
    """``lock_holder(seconds)``: another process holding the home's runner lock for that long."""
    started: list[subprocess.Popen[str]] = []

    def start(seconds: float) -> subprocess.Popen[str]:
        invoicesync_home.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen([sys.executable, "-c", HOLDER, str(invoicesync_home / "state.db"), str(seconds)],
                                   stdout=subprocess.PIPE, text=True)
        started.append(process)
        assert process.stdout is not None and process.stdout.readline().strip() == "locked"
        return process

    yield start
    for process in started:
        process.kill()
        process.wait()


def test_a_second_runner_is_refused_with_the_holder_named_until_the_holder_dies(
        memory_workspace: Workspace, memory_plugins: tuple[Plugins, MemorySource, MemoryTarget],
        invoicesync_cli: Callable[..., Result], lock_holder: Callable[[float], subprocess.Popen[str]]) -> None:
    holder = lock_holder(600)
    result = invoicesync_cli("sync", plugins=memory_plugins[0])
    assert result.exit_code == EXIT_BUSY == 75, result.output
    [line] = [line for line in result.output.splitlines() if line.strip()]
    assert line.startswith("Error: another sync is running in this home: ")
    assert f"pid {holder.pid} on {socket.gethostname()}" in line and "holder-for-test" in line
    assert "running since 20" in line
    assert memory_plugins[2].writes == 0
    # Commands that only read do not need the lock.
    assert invoicesync_cli("documents", plugins=memory_plugins[0]).exit_code == 0

    holder.send_signal(signal.SIGKILL)  # no clean-up at all: the kernel frees the lock
    holder.wait()
    report = run_sync(memory_workspace)
    assert report.exit_code == EXIT_OK and memory_plugins[2].writes == 25


@pytest.mark.parametrize("wait_args", [["--wait", "30"], ["--wait"]])
def test_sync_wait_queues_behind_the_running_sync(
        memory_workspace: Workspace, memory_plugins: tuple[Plugins, MemorySource, MemoryTarget],
        invoicesync_cli: Callable[..., Result], lock_holder: Callable[[float], subprocess.Popen[str]],
        wait_args: list[str]) -> None:
    lock_holder(1.0)
    began = time.monotonic()
    result = invoicesync_cli("sync", *wait_args, "--json", plugins=memory_plugins[0])
    assert result.exit_code == EXIT_OK, result.output
    assert json.loads(result.stdout)["exported"]["memtarget"]["delivered"] == 25
    assert time.monotonic() - began >= 0.5  # it did wait


def test_sync_wait_gives_up_after_its_seconds(
        memory_plugins: tuple[Plugins, MemorySource, MemoryTarget], memory_workspace: Workspace,
        invoicesync_cli: Callable[..., Result], lock_holder: Callable[[float], subprocess.Popen[str]]) -> None:
    lock_holder(600)
    result = invoicesync_cli("sync", "--wait", "0.5", plugins=memory_plugins[0])
    assert result.exit_code == EXIT_BUSY and "gave up waiting" in result.output


def test_claims_are_atomic_released_by_their_owner_and_taken_over_when_expired(
        open_store: Callable[..., SqlStore]) -> None:
    store = open_store()
    assert store.claim("d1", "t", "run-a", lease=60)
    assert not store.claim("d1", "t", "run-b", lease=60)  # a live owner keeps it
    assert store.claim("d1", "t2", "run-b", lease=60)  # per (document, target)
    assert store.claim("d1", "t", "run-a", lease=60)  # the owner may renew it
    store.release_claim("d1", "t", "run-b")  # only the owner releases
    assert not store.claim("d1", "t", "run-b", lease=60)
    store.release_claim("d1", "t", "run-a")
    assert store.claim("d1", "t", "run-b", lease=-1)  # then run-b crashes: its lease runs out
    assert store.claim("d1", "t", "run-c", lease=60)
    store.renew_claims("run-c", lease=60)
    assert not store.claim("d1", "t", "run-a", lease=60)


def test_a_document_another_live_run_claimed_is_left_alone_and_an_expired_claim_is_taken_over(
        memory_workspace: Workspace, memory_plugins: tuple[Plugins, MemorySource, MemoryTarget]) -> None:
    state, target = memory_workspace.state, memory_plugins[2]
    live, crashed = (Document.make_id("memory", "memory", "c1", s) for s in ("m1", "m2"))
    assert state.claim(live, "memtarget", "another-live-run", lease=600)
    # Under the runner lock a live claim can only be another host's (a shared state); one from here
    # would be a finished run's, taken over at once (test_claim_owners.py).
    state._exec("UPDATE claims SET owner_host = 'another-host'")  # type: ignore[attr-defined]
    assert state.claim(crashed, "memtarget", "a-crashed-run", lease=-1)
    report = run_sync(memory_workspace)
    assert report.exit_code == EXIT_PARTIAL
    assert report.exported["memtarget"]["elsewhere"] == 1 and report.exported["memtarget"]["delivered"] == 24
    assert [(p.document, p.message) for p in report.problems] == [
        (live, "in progress elsewhere (another run holds its claim); retried next run")]
    assert live not in target.stored and crashed in target.stored
    assert state.get_delivery(live, "memtarget") is None  # neither pushed nor settled: no intent either

    state.release_claim(live, "memtarget", "another-live-run")
    again = run_sync(memory_workspace)
    assert again.exit_code == EXIT_OK and again.exported["memtarget"]["delivered"] == 1
    assert target.writes == 25 and state._all("SELECT * FROM claims") == []  # type: ignore[attr-defined]


def driver(home: Path, log: Path, *args: str, options: tuple[str, ...] = ()) -> list[str]:
    return [sys.executable, str(DRIVER), str(home), str(log), *options, "--", *args]


def written(log: Path) -> Counter[str]:
    return Counter(line.split()[0] for line in log.read_text().splitlines()) if log.exists() else Counter()


def test_two_runners_that_both_get_in_still_push_each_document_once(tmp_path: Path) -> None:
    home, log = tmp_path / "home", tmp_path / "writes.log"
    subprocess.run(driver(home, log, "setup"), check=True)
    # No look-up before writing in this target: a second push of a document is a second line.
    options = ("--count", "16", "--delay", "0.1", "--no-lookup", "--no-lock")
    runs = [subprocess.Popen(driver(home, log, "sync", options=options), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert all(run.returncode in (0, 1) for run in runs), outputs
    assert set(written(log).values()) == {1} and len(written(log)) == 16, (written(log), outputs)

    final = subprocess.run(driver(home, log, "sync", options=("--count", "16", "--no-lookup")),
                           capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stdout + final.stderr
    assert set(written(log).values()) == {1} and len(written(log)) == 16
    assert SqliteStore(home / "state.db")._all("SELECT * FROM claims") == []


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_at_a_safe_point_and_the_next_run_finishes_the_job(
        tmp_path: Path, signum: signal.Signals, code: int) -> None:
    home, log, started = tmp_path / "home", tmp_path / "writes.log", tmp_path / "pushing"
    subprocess.run(driver(home, log, "setup"), check=True)
    options = ("--count", "20", "--delay", "0.3", "--started", str(started))
    run = subprocess.Popen(driver(home, log, "sync", options=options), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not started.exists() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    run.send_signal(signum)
    stdout, stderr = run.communicate(timeout=60)
    assert run.returncode == code, stdout + stderr
    assert "stopped safely" in stderr and "Traceback" not in stderr and "Aborted" not in stdout + stderr
    assert 0 < sum(written(log).values()) < 20  # it stopped early, after the pushes in flight

    again = subprocess.run(driver(home, log, "sync", options=("--count", "20")), capture_output=True, text=True,
                           timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(written(log)) == 20 and set(written(log).values()) == {1}


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs, unmounted afterwards (root only)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root to mount a small tmpfs")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_home_disk_ends_sync_with_one_line_and_no_hang(small_disk: Path, tmp_path: Path) -> None:
    home, log = small_disk / "home", tmp_path / "writes.log"
    subprocess.run(driver(home, log, "setup"), check=True)
    try:
        run = subprocess.run(driver(home, log, "sync", options=("--count", "200", "--pdf-kb", "20")),
                             capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("sync hung on a full disk")
    assert run.returncode == 2, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    fatal = [line for line in run.stdout.splitlines() if "fatal:" in line]
    assert len(fatal) == 1 and "disk of the invoicesync home is full" in fatal[0]
