"""One runner per home: an exclusive ``flock`` on a file in the home.

The kernel drops the lock when its holder's file descriptor closes, so a runner that dies — even
by SIGKILL — frees it at once; nothing stale is ever left to clean up. The holder writes who it is
into the file, so a second runner can say whom it is waiting for.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..errors import InvoiceSyncError
from ..processes import ProcessIdentity

#: How often a waiting runner tries the lock again.
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class RunnerInfo:
    """Who holds (or wants) the runner lock."""

    pid: int
    host: str
    command: str
    since: str
    #: The run's claim-owner token: while it holds the lock, claims of other runs here are stale.
    token: str = ""

    @classmethod
    def current(cls, command: str | None = None, *, token: str = "") -> RunnerInfo:
        argv = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else "python"
        return cls(pid=os.getpid(), host=socket.gethostname(), command=command or argv,
                   since=datetime.now(UTC).isoformat(timespec="seconds"), token=token)

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host} (`{self.command}`), running since {self.since}"


def claim_is_stale(owner: str, host: str | None, pid: int | None, started: str | None, *,
                   claimant: str, lock_run: str | None) -> bool:
    """Whether a claim held by ``owner`` (run by process ``host``/``pid``/``started``) may be taken
    over before its lease ends: its owner is from here and either its process is gone (killed), or
    ``claimant`` is the run holding this home's runner lock (``lock_run``), so no other run of this
    home is live. Claims from other hosts, or of unknown owners, wait for the lease."""
    if host is None or pid is None:
        return False
    identity = ProcessIdentity(host, pid, started)
    if not identity.is_here():
        return False
    return identity.is_gone() or (lock_run is not None and claimant == lock_run and owner != claimant)


class RunnerBusy(InvoiceSyncError):
    """Another runner holds this home's lock (or the wait for it was given up)."""

    def __init__(self, holder: RunnerInfo | None, *, waited: bool, where: str = "in this home") -> None:
        self.holder = holder
        who = holder.describe() if holder else "another process (it has not said who it is yet)"
        hint = "gave up waiting" if waited else "try again later, or use `sync --wait`"
        super().__init__(f"another sync is running {where}: {who}; {hint}")


class FileRunnerLock:
    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def hold(self, me: RunnerInfo, *, wait: float | None = 0.0,
             should_stop: Callable[[], bool] = lambda: False) -> Iterator[None]:
        """Hold the lock for the ``with`` block. ``wait``: seconds to queue for it (``None``: as long
        as it takes); raises ``RunnerBusy`` when it stays taken or ``should_stop()`` turns true."""
        # O_CLOEXEC (Python's default): a child process the run starts must not keep the lock alive.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            self._acquire(fd, wait, should_stop)
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(asdict(me)).encode(), 0)
            try:
                yield
            finally:
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def holder(self) -> RunnerInfo | None:
        try:
            data = json.loads(self.path.read_text() or "null")
            return RunnerInfo(**data) if isinstance(data, dict) else None
        except (OSError, ValueError, TypeError):
            return None

    def _acquire(self, fd: int, wait: float | None, should_stop: Callable[[], bool]) -> None:
        deadline = None if wait is None else time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            if should_stop() or (deadline is not None and time.monotonic() >= deadline):
                raise RunnerBusy(self.holder(), waited=bool(wait))
            time.sleep(POLL_SECONDS if deadline is None else max(0.0, min(POLL_SECONDS, deadline - time.monotonic())))
