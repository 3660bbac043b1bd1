"""Stopping a run: at the next safe point when a signal asks for it, or at once when the home
itself fails (disk full) and no document could get through anyway.

Safe points: no new listing, fetch or push starts once a stop is asked for; what is in flight
finishes (a push's ``pending`` intent is resolved by the next run if it does not). Every thread
of the run ends, so nothing waits forever.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from ..errors import InvoiceSyncError
from ..secrets import redact

_FULL = {errno.ENOSPC, errno.EDQUOT}
_SQLITE_FULL = 13  # SQLITE_FULL: "database or disk is full"


def describe(exc: BaseException) -> str:
    """One line for the summary: our own errors as they are, anything else with its type."""
    text = str(exc) if isinstance(exc, InvoiceSyncError) else f"{type(exc).__name__}: {exc}"
    return redact(" ".join(text.split()))


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or what caused it, e.g. a plugin wrapping a blob write) is a full disk."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in _FULL:
            return True
        if isinstance(exc, sqlite3.Error) and (
                getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL or "disk is full" in str(exc)):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


class RunControl:
    """Shared by every thread of one run: whether to stop, why, and the run's claim-owner token."""

    def __init__(self) -> None:
        #: Names this run in the claims table; unique even for two runs of one process.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self.signal: int | None = None
        self.error: str | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def interrupt(self, signum: int) -> None:
        """Stop at the next safe point because of a signal (exit code 128 + signum)."""
        with self._lock:
            if self.signal is None:
                self.signal = signum
        self._stop.set()

    def abort(self, message: str) -> None:
        """Stop now because of an error no document can get past; the first one is the run's error."""
        with self._lock:
            if self.error is None:
                self.error = message
        self._stop.set()

    def check_fatal(self, exc: BaseException) -> None:
        """End the run if ``exc`` means the home cannot take any more writes."""
        if is_disk_full(exc):
            self.abort(f"the disk of the invoicesync home is full ({describe(exc)}); "
                       "free some space and run again: nothing is lost")


@contextmanager
def stop_on_signals(control: RunControl) -> Iterator[None]:
    """SIGINT and SIGTERM ask ``control`` to stop at the next safe point; a second one stops at once.

    Only the main thread may set handlers; elsewhere this does nothing (the caller owns signals).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if control.stopping and control.signal is not None:
            os.write(2, b"\nstopping at once; the next run resolves what was in flight\n")
            os._exit(128 + signum)  # the lock is the kernel's, pending intents are in the ledger
        control.interrupt(signum)
        os.write(2, f"\n{signal.Signals(signum).name}: stopping at the next safe point "
                    "(send it again to stop at once)\n".encode())

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
