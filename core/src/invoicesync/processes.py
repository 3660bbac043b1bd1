"""Who a process is, and whether it is gone: what a killed run's claims and temp files are judged by.

A pid alone is not enough: pids are reused, and they only mean something on the machine, boot and
pid namespace that handed them out. So an identity is (where, pid, start time), and a process is
judged gone only where that can be told for certain; anything else counts as alive, which at worst
waits for a lease to run out, and never lets two live writers in at once.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from functools import cache


def _read(path: str) -> str:
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return ""


@cache
def _machine(pid: int) -> str:
    # Keyed by pid so a forked child recomputes nothing wrong (the values do not change on fork).
    boot = _read("/proc/sys/kernel/random/boot_id")
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return "/".join(part for part in (socket.gethostname(), boot, namespace) if part)


def _stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks after boot) of process ``pid``, or ``None`` where it cannot
    be read (no /proc, no such process, or hidden from this user)."""
    stat = _read(f"/proc/{pid}/stat")
    fields = stat.rpartition(")")[2].split()  # the command name, in (), may hold spaces
    return (fields[0], fields[19]) if len(fields) >= 20 else None


def started_of(pid: int) -> str | None:
    """The start time of process ``pid``, or ``None`` where the OS does not say."""
    stat = _stat(pid)
    return stat[1] if stat else None


@dataclass(frozen=True)
class ProcessIdentity:
    #: Where pids are comparable: the host name, plus its boot id and pid namespace where known.
    host: str
    pid: int
    #: The process's start time; ``None`` where the OS does not say (then only the pid is checked).
    started: str | None

    @classmethod
    def current(cls) -> ProcessIdentity:
        return _current(os.getpid())

    def is_here(self) -> bool:
        """Whether this identity is from this machine, boot and pid namespace."""
        return self.host == _machine(os.getpid())

    def is_gone(self) -> bool:
        """Certainly ended: from here, and its pid is free or now names a process started later.
        Unknown (another host, no pid) is not gone."""
        if not self.is_here() or self.pid <= 0:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass  # a process of another user holds the pid: told apart by its start time below
        stat = _stat(self.pid) if self.started is not None else None
        if stat is None:
            return False  # the pid is taken and nothing more can be told
        state, started = stat
        return state in ("Z", "X") or started != self.started  # killed but not reaped yet, or reused


@cache
def _current(pid: int) -> ProcessIdentity:
    return ProcessIdentity(_machine(pid), pid, started_of(pid))
