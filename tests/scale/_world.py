"""A world for the scale-out tests: the Billit sandbox with many companies, a Dropbox sandbox and a
local folder as targets, a home whose state is in PostgreSQL, and ``invoicesync worker`` processes
on a RabbitMQ vhost (or Redis) of the test's own."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from invoicesync.accounts import connect
from invoicesync.context import NonInteractiveUI
from invoicesync.sandbox import RunningSandbox, serve
from invoicesync.workspace import Workspace
from invoicesync_billit.sandbox import BillitSandbox
from invoicesync_dropbox.sandbox import DropboxSandbox

RUN_TIMEOUT = 240
#: Billit accounts in a home; the sandbox's companies are shared out between them.
ACCOUNTS = 4


class CountingDropbox(DropboxSandbox):
    """The Dropbox sandbox, counting every file it commits by path: a second write of one path is a
    document pushed twice, whatever the ledger says."""

    def __init__(self, root: Path) -> None:
        super().__init__(root=root)
        self.commits: Counter[str] = Counter()
        commit = self.namespace.commit
        lock = threading.Lock()

        def counting(path: str, *args: Any, **kwargs: Any) -> Any:
            entry = commit(path, *args, **kwargs)
            with lock:
                self.commits[entry.display.lower()] += 1
            return entry

        self.namespace.commit = counting  # type: ignore[method-assign]

    def files(self) -> dict[str, str]:
        """path -> sha256 of every file it holds."""
        with self.namespace.lock:
            entries = [e for e in self.namespace.entries.values() if e.kind == "file"]
        return {e.display.lower(): hashlib.sha256(e.blob.read_bytes()).hexdigest() for e in entries if e.blob}


@dataclass
class Holdings:
    """What a run left on the targets: the local folder's and Dropbox's files (path -> sha256)."""

    folder: dict[str, str]
    dropbox: dict[str, str]


@dataclass
class Targets:
    dropbox: CountingDropbox
    running: RunningSandbox
    folder: Path

    def holdings(self) -> Holdings:
        return Holdings(self.folder_files(), self.dropbox.files())

    def folder_files(self) -> dict[str, str]:
        return {str(p.relative_to(self.folder)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(self.folder.rglob("*")) if p.is_file()}


def start_targets(root: Path) -> Targets:
    dropbox = CountingDropbox(root / "dropbox-store")
    running = serve(dropbox, tls=getattr(dropbox, "tls", False), tls_dir=root / "dropbox-ca")
    return Targets(dropbox, running, root / "invoices")


def make_home(home: Path, billit: RunningSandbox, targets: Targets, *, accounts: int, state_url: str | None,
              broker_url: str | None = None, queue: str | None = None) -> Path:
    """A home with ``accounts`` Billit accounts sharing the sandbox's companies between them, the
    Dropbox account and the local folder; its config names the state and the broker."""
    home.mkdir(parents=True)
    lines = [f'state_url = "{state_url}"'] if state_url else []
    if broker_url:
        lines += ["[celery]", f'broker_url = "{broker_url}"', f'queue = "{queue}"', "export_batch = 25"]
    (home / "invoicesync.toml").write_text("\n".join(lines) + "\n")
    app = billit.app
    assert isinstance(app, BillitSandbox)
    parties = [str(c.party_id) for c in app.companies]
    with _file_secrets(), Workspace.open(home) as workspace:
        for number in range(accounts):
            name = f"billit-{number}"
            for key, value in app.account_secrets().items():
                workspace.secrets(name).set(key, value)
            connect(workspace, "billit", ui=NonInteractiveUI(), name=name, settings=app.account_settings(billit.url),
                    companies=parties[number::accounts])
        for key, value in targets.dropbox.account_secrets().items():
            workspace.secrets("dropbox").set(key, value)
        settings = dict(targets.dropbox.account_settings(targets.running.url))
        if targets.running.ca_file:
            settings["ca_bundle"] = str(targets.running.ca_file)
        connect(workspace, "dropbox", ui=NonInteractiveUI(), name="dropbox", settings=settings)
        connect(workspace, "localfs", ui=NonInteractiveUI(), name="folder", settings={"root": str(targets.folder)})
    return home


@contextmanager
def _file_secrets() -> Iterator[None]:
    """Secrets in the home's file, where the worker and sync processes read them
    (INVOICESYNC_SECRETS=file), whatever keyring another test of this pytest process installed."""
    previous = os.environ.get("INVOICESYNC_SECRETS")
    os.environ["INVOICESYNC_SECRETS"] = "file"
    try:
        yield
    finally:
        if previous is None:
            del os.environ["INVOICESYNC_SECRETS"]
        else:
            os.environ["INVOICESYNC_SECRETS"] = previous


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVOICESYNC_")}
    return {**env, "INVOICESYNC_SECRETS": "file", "PYTHONUNBUFFERED": "1", **extra}


@dataclass
class Workers:
    """``invoicesync worker`` processes on one home."""

    home: Path
    env: dict[str, str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, count: int = 1, concurrency: int = 4, loglevel: str = "WARNING") -> None:
        for _ in range(count):
            log = open(self.home.parent / f"worker-{len(self.processes)}.log", "wb")  # noqa: SIM115 - the child's
            with log:
                self.processes.append(subprocess.Popen(
                    [sys.executable, "-m", "invoicesync", "--home", str(self.home), "worker", "-c", str(concurrency),
                     "-l", loglevel],
                    stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.home.parent))

    def kill_one(self) -> None:
        """SIGKILL the oldest live worker."""
        process = next(p for p in self.processes if p.poll() is None)
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)

    def full_logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.home.parent.glob("worker-*.log")))

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(self.home.parent.glob("worker-*.log")))


def sync(home: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "invoicesync", "--home", str(home), "sync", "--json", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=home.parent)


def finish(process: subprocess.Popen[str], timeout: float = RUN_TIMEOUT) -> tuple[int, dict[str, Any], str]:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"sync did not finish in {timeout} s: {err[-3000:]}") from None
    try:
        report = json.loads(out)
    except ValueError:
        raise AssertionError(f"sync printed no JSON (exit {process.returncode}): {out[-2000:]} {err[-3000:]}") from None
    return process.returncode, report, err


def wait_for(condition: Any, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


# -- what must hold after a run ------------------------------------------------------------------

def delivered_twice(state_url: str) -> list[tuple[str, str, int]]:
    """(document, target, count) of every delivery the ledger logged as written more than once."""
    with psycopg.connect(state_url) as db:
        return db.execute("SELECT document_id, target, count(*) FROM delivery_log WHERE status = 'delivered' "
                          "GROUP BY document_id, target HAVING count(*) > 1").fetchall()


def reference_run(tmp_path: Path, billit: RunningSandbox, targets: Targets, accounts: int = ACCOUNTS) -> dict[str, Any]:
    """A plain ``sync`` of the same source in one process, into targets of its own."""
    home = make_home(tmp_path / "reference", billit, targets, accounts=accounts, state_url=None)
    code, report, err = finish(sync(home, environment()))
    assert code == 0, (err, report["problems"][:3], report["fatal"])
    return report


def assert_same_targets(targets: Targets, reference: Holdings) -> None:
    """The same files at the same paths as the single-process run, and none written twice."""
    assert targets.folder_files() == reference.folder
    assert targets.dropbox.files() == reference.dropbox
    twice = {path: n for path, n in targets.dropbox.commits.items() if n > 1}
    assert not twice, f"written more than once to Dropbox: {twice}"
