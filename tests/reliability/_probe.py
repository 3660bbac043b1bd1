"""``invoicesync`` itself, with passive probes that say which phase the run is in.

The suite runs ``python _probe.py --home H sync`` instead of ``invoicesync --home H sync`` so it
can aim its SIGKILLs: the probes write one line per event to the pipe whose fd is in
``RELIABILITY_PROBE_FD`` and change nothing else. Events:

- ``listing``: a request to the source's listing (``/v1/orders``, ``/v1/orders/deleted``);
- ``fetch``: a request for one order or one file, or a write into the blob store;
- ``push <target>``: a request to a target sandbox, or a file opened for writing / renamed in
  the local folder;
- ``ledger``: an INSERT/UPDATE/DELETE on the state database.

Each request event is written twice, ``... >`` before sending and ``... <`` after the answer (the
window where the server has committed a write and the ledger does not know yet); a rename is
written as ``push localfs rename`` / ``fetch blob rename`` (the blob store's link(2), or rename, or
the commit of a blob kept inline in ``blobs/inline.sqlite``).

``RELIABILITY_DIE_AT="EVENT PREFIX:N"`` makes the process SIGKILL itself at the N-th event starting
with that prefix, at that very instant (deterministic reproductions of a kill window).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
from typing import Any

import httpx


def _install(fd: int, ports: dict[int, str], folder: str, blobs: str, die_at: str) -> None:
    prefix, _, count = die_at.rpartition(":")
    seen = [0]

    def emit(event: str) -> None:
        try:
            os.write(fd, (event + "\n").encode())
        except OSError:  # the suite stopped listening: keep running unobserved
            pass
        if prefix and event.startswith(prefix):
            seen[0] += 1
            if seen[0] == int(count):
                os.kill(os.getpid(), signal.SIGKILL)

    def phase_of(request: httpx.Request) -> str | None:
        owner = ports.get(request.url.port or 0)
        if owner is None:
            return None
        if owner != "billit":
            return f"push {owner.split(':')[0]}"
        path = request.url.path
        if path in ("/v1/orders", "/v1/orders/deleted"):
            return "listing"
        if path.startswith(("/v1/orders/", "/v1/files/")):
            return "fetch"
        return None

    def probed(original: Any) -> Any:
        def handle_request(self: httpx.BaseTransport, request: httpx.Request) -> httpx.Response:
            phase = phase_of(request)
            if phase:
                emit(f"{phase} >")
            response = original(self, request)
            if phase:
                emit(f"{phase} <")
            return response
        return handle_request

    # Every transport a request can leave by: core's own (direct connections) and httpx's (proxies).
    from invoicesync.http._connections import LeanTransport

    for transport in (LeanTransport, httpx.HTTPTransport):
        transport.handle_request = probed(transport.handle_request)  # type: ignore[method-assign]

    def trace(statement: str) -> None:
        verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else ""
        if verb in {"INSERT", "UPDATE", "DELETE", "REPLACE"}:
            emit("ledger")

    connect = sqlite3.connect

    def blob_trace(statement: str) -> None:
        verb = statement.strip().upper()
        if verb.startswith("INSERT"):
            emit("fetch")
        elif verb == "COMMIT":
            emit("fetch blob rename")  # an inline blob is published by its commit

    def traced_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        connection = connect(*args, **kwargs)
        # the home's blob store keeps small blobs in blobs/inline.sqlite: its writes are fetches
        inline_blobs = str(args[0] if args else kwargs.get("database", "")).startswith(blobs)
        connection.set_trace_callback(blob_trace if inline_blobs else trace)
        return connection

    sqlite3.connect = traced_connect  # type: ignore[assignment]

    def audit(event: str, args: tuple[Any, ...]) -> None:
        if event == "open" and args and isinstance(args[0], str):
            path, mode, flags = args[0], args[1], args[2]
            writing = (mode and any(c in mode for c in "wax+")) or (flags & (os.O_WRONLY | os.O_RDWR))
            if writing and path.startswith(folder):
                emit("push localfs")
            elif writing and path.startswith(blobs):
                emit("fetch")
        elif event == "os.rename" and args and str(args[0]).startswith(folder):
            emit("push localfs rename")
        elif event in ("os.rename", "os.link") and args and str(args[0]).startswith(blobs):
            emit("fetch blob rename")  # the blob store publishes with link(2), renames without hard links

    sys.addaudithook(audit)


def main() -> None:
    raw_fd = os.environ.get("RELIABILITY_PROBE_FD")
    if raw_fd:
        _install(int(raw_fd), {int(k): v for k, v in json.loads(os.environ["RELIABILITY_PORTS"]).items()},
                 os.environ["RELIABILITY_FOLDER"], os.environ["RELIABILITY_BLOBS"],
                 os.environ.get("RELIABILITY_DIE_AT", ""))
    from invoicesync.cli import run as cli_run  # as `invoicesync` runs: its exit path included

    sys.argv = ["invoicesync", *sys.argv[1:]]
    cli_run()


if __name__ == "__main__":
    main()
