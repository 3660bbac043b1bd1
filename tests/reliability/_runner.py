"""Run the real ``invoicesync sync`` as a subprocess, optionally SIGKILLed at an aimed moment."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ._sandboxes import HERE

PHASES = ("listing", "fetch", "push", "ledger")
#: No single run may take longer than this; a run that does is killed and reported as a hang.
RUN_TIMEOUT = 180.0


@dataclass
class RunResult:
    exit_code: int | None  #: None: killed by us
    seconds: float
    stdout: str = ""
    stderr: str = ""
    killed_in: str | None = None  #: the phase whose event triggered our SIGKILL
    last_event: str | None = None  #: the last event the process wrote before it died
    events: Counter[str] = field(default_factory=Counter)
    hung: bool = False


def environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVOICESYNC_")}
    env.update(INVOICESYNC_SECRETS="file", INVOICESYNC_HOME=str(home), PYTHONUNBUFFERED="1")
    return env


def sync_command(home: Path, *extra: str) -> list[str]:
    """The real CLI: ``invoicesync --home HOME sync``, through the probe wrapper (which is the
    CLI's own ``main`` once the probes are in)."""
    return [sys.executable, str(HERE / "_probe.py"), "--home", str(home), "sync", *extra]


def start_sync(home: Path, folder: Path, ports: dict[int, str], *extra: str,
               probe_fd: int | None = None, die_at: str = "") -> subprocess.Popen[str]:
    env = environment(home)
    if probe_fd is not None:
        env.update(RELIABILITY_PROBE_FD=str(probe_fd), RELIABILITY_PORTS=json.dumps(ports),
                   RELIABILITY_FOLDER=str(folder), RELIABILITY_BLOBS=str(home / "blobs"), RELIABILITY_DIE_AT=die_at)
    return subprocess.Popen(sync_command(home, *extra), env=env, cwd=home.parent, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            pass_fds=(probe_fd,) if probe_fd is not None else ())


def run_sync(home: Path, folder: Path, ports: dict[int, str], *extra: str,
             kill_at: tuple[str, int] | None = None, delay: float = 0.0, die_at: str = "") -> RunResult:
    """One ``sync``. With ``kill_at=(phase, n)``, SIGKILL it ``delay`` seconds after the n-th
    event of that phase (if the run gets that far; otherwise it finishes on its own). With
    ``die_at`` the probe kills the process itself at that event (see ``_probe.py``)."""
    read_end, write_end = os.pipe()
    started = time.monotonic()
    process = start_sync(home, folder, ports, *extra, probe_fd=write_end, die_at=die_at)
    os.close(write_end)
    events: Counter[str] = Counter()
    last_phase: str | None = None
    killed = hung = False
    buffer = b""
    try:
        while True:
            ready, _, _ = select.select([read_end], [], [], 0.5)
            chunk = os.read(read_end, 65536) if ready else b""
            if ready and not chunk:
                break  # every writer is gone: the run ended
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                phase = line.decode().split()[0]
                last_phase = line.decode()
                events[phase] += 1
                if not killed and kill_at and phase == kill_at[0] and events[phase] == kill_at[1]:
                    if delay:
                        time.sleep(delay)
                    process.send_signal(signal.SIGKILL)
                    killed = True
            if time.monotonic() - started > RUN_TIMEOUT:
                process.kill()
                hung = True
                break
    finally:
        os.close(read_end)
        stdout, stderr = process.communicate(timeout=60)
    return RunResult(None if killed else process.returncode, time.monotonic() - started, stdout, stderr,
                     kill_at[0] if killed and kill_at else None, last_phase, events, hung)


def run_plain(home: Path, *extra: str, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """``invoicesync --home HOME sync`` with no probe at all."""
    command = [sys.executable, "-m", "invoicesync", "--home", str(home), "sync", *extra]
    return subprocess.run(command, env=environment(home), cwd=home.parent, text=True, capture_output=True,
                          timeout=timeout, check=False)
