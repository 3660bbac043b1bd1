"""Run the real ``invoicesync`` CLI in its own process, with in-memory plugins (for the runner tests).

    python runner_driver.py HOME LOG [options] -- CLI ARGS...

The source is ``MemorySource`` (deterministic, so two processes see the same documents); the target
appends one line per real write to LOG (``O_APPEND``, so two processes can share it) and can be told
not to look up before writing, so a second push of a document shows as a duplicate line.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from invoicesync import Account, Company, Context, Delivery, DeliveryStatus, PluginInfo, PluginKind, PushRequest
from invoicesync import plugins as plugins_module
from invoicesync.hookspecs import hookimpl
from invoicesync.testing import MemorySource


@dataclass(eq=False)  # plugins must stay hashable for pluggy
class LogTarget:
    log: Path
    delay: float = 0.0
    lookup: bool = True
    #: first push of a run: touch this file, so a test knows pushing has begun
    started: Path | None = None

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(kind=PluginKind.TARGET, title="Log target", batch_size=2, concurrency=2,
                          api_version=(1, 2))

    @hookimpl
    def auth(self, account: Account, ctx: Context) -> list[Company]:
        return []

    @hookimpl
    def push_documents(self, account: Account, requests: list[PushRequest], ctx: Context) -> Iterator[Delivery]:
        for request in requests:
            document = request.document
            if self.started is not None:
                self.started.touch()
            line = f"{document.id} {document.version}\n"
            if self.lookup and self.log.exists() and line in self.log.read_text().splitlines(keepends=True):
                status = DeliveryStatus.UNCHANGED
            else:
                time.sleep(self.delay)
                fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, line.encode())
                finally:
                    os.close(fd)
                status = DeliveryStatus.DELIVERED
            yield Delivery(document_id=document.id, target=account.name, version=document.version, status=status)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("home", type=Path)
    parser.add_argument("log", type=Path)
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--pdf-kb", type=int, default=1)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--no-lookup", action="store_true")
    parser.add_argument("--no-lock", action="store_true", help="bypass the runner lock (as a second host would)")
    parser.add_argument("--started", type=Path)
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    options = parser.parse_args(argv[:split])
    options.args = argv[split + 1:]

    source = MemorySource(options.count, page=5)
    for record in source.records:
        record.pdf = record.source_id.encode().ljust(options.pdf_kb * 1024, b".")
    target = LogTarget(options.log, delay=options.delay, lookup=not options.no_lookup, started=options.started)
    plugins = plugins_module.Plugins.from_objects({"memory": (PluginKind.SOURCE, source),
                                                   "logtarget": (PluginKind.TARGET, target)})
    os.environ["INVOICESYNC_HOME"] = str(options.home)
    os.environ["INVOICESYNC_SECRETS"] = "file"
    if options.no_lock:
        from invoicesync.state import SqliteStore

        SqliteStore.runner_lock = lambda self, me, **kwargs: nullcontext()  # type: ignore[method-assign]
        if os.environ.get("INVOICESYNC_STATE_URL"):
            from invoicesync.state._postgres import PostgresStore

            PostgresStore.runner_lock = lambda self, me, **kwargs: nullcontext()  # type: ignore[method-assign]
    if options.args == ["setup"]:
        from invoicesync.accounts import connect
        from invoicesync.context import NonInteractiveUI
        from invoicesync.workspace import Workspace

        with Workspace.open(options.home, plugins=plugins) as workspace:
            connect(workspace, "memory", ui=NonInteractiveUI())
            connect(workspace, "logtarget", ui=NonInteractiveUI())
        return
    from invoicesync.cli import cli

    cli.main(args=options.args, prog_name="invoicesync", obj=plugins)  # the CLI uses these, not the installed


if __name__ == "__main__":
    sys.exit(main())
