"""One world of a reliability run: the Billit sandbox, the three target sandboxes, a local folder
and an invoicesync home with an account on each; plus what the source holds, read from Billit."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from invoicesync.accounts import connect
from invoicesync.context import NonInteractiveUI
from invoicesync.workspace import Workspace

from ._sandboxes import TARGET_PLUGINS, TOKEN_OPTIONS, SandboxProcess, start_all

#: Account names in the home; the table of results uses them as the target names.
LOCAL = "localfs"


@dataclass
class World:
    root: Path
    billit: SandboxProcess
    targets: dict[str, SandboxProcess]
    homes: list[Path] = field(default_factory=list)

    def folder(self, home: Path) -> Path:
        return home.parent / f"{home.name}-invoices"

    def ports(self) -> dict[int, str]:
        """Which sandbox listens where (the probe names the phase of each request by it)."""
        return {self.billit.port: "billit", **{s.port: name for name, s in self.targets.items()}}

    def all_sandboxes(self) -> list[SandboxProcess]:
        return [self.billit, *self.targets.values()]


@contextmanager
def world(root: Path, *, documents: int, seed: int, token_seconds: int | None = None,
          target_copies: int = 1) -> Iterator[World]:
    """Start the sandboxes (``target_copies`` sets of targets: the suite compares a faulty home's
    targets with a clean home's) and stop every one of them on the way out."""
    token = {} if token_seconds is None else {"billit": token_seconds}
    specs: list[tuple[str, Path, dict[str, Any]]] = [
        ("billit", root / "sb-billit", {"documents": documents, "seed": seed, "companies": 2, **token})]
    for copy in range(target_copies):
        for plugin in TARGET_PLUGINS:
            options: dict[str, Any] = {"seed": seed}
            if token_seconds is not None:
                options[TOKEN_OPTIONS[plugin]] = token_seconds
            specs.append((f"{plugin}:{copy}", root / f"sb-{plugin}-{copy}", options))
    started = start_all(specs)
    try:
        yield World(root, started["billit"], {k: v for k, v in started.items() if k != "billit"})
    finally:
        for sandbox in started.values():
            sandbox.request_stop()
        for sandbox in started.values():
            sandbox.stop()


def make_home(world: World, name: str, copy: int | None = 0) -> Path:
    """A home with the Billit account and one account per target of set ``copy`` (None: none),
    plus a local folder."""
    home = world.root / name
    folder = world.folder(home)
    with _file_secrets(), Workspace.open(home) as workspace:
        _connect(workspace, "billit", world.billit, companies=("*",))
        for plugin in TARGET_PLUGINS if copy is not None else ():
            _connect(workspace, plugin, world.targets[f"{plugin}:{copy}"], companies=("*",))
        connect(workspace, "localfs", ui=NonInteractiveUI(), name=LOCAL, settings={"root": str(folder)})
    world.homes.append(home)
    return home


@contextmanager
def _file_secrets() -> Iterator[None]:
    """Secrets in the home's file, as the ``sync`` subprocesses read them (INVOICESYNC_SECRETS=file),
    whatever keyring another test of this pytest process may have installed."""
    previous = os.environ.get("INVOICESYNC_SECRETS")
    os.environ["INVOICESYNC_SECRETS"] = "file"
    try:
        yield
    finally:
        if previous is None:
            del os.environ["INVOICESYNC_SECRETS"]
        else:
            os.environ["INVOICESYNC_SECRETS"] = previous


def _connect(workspace: Workspace, plugin: str, sandbox: SandboxProcess, companies: tuple[str, ...]) -> None:
    for key, value in sandbox.secrets.items():
        workspace.secrets(plugin).set(key, value)
    connect(workspace, plugin, ui=NonInteractiveUI(), name=plugin, settings=dict(sandbox.settings),
            companies=companies)


# -- what the source holds ---------------------------------------------------------------------

@dataclass
class SourceFile:
    order_id: int
    number: str
    name: str
    sha256: str
    purchase: bool


def source_files(billit: SandboxProcess) -> list[SourceFile]:
    """Every file of every order, read from the Billit sandbox through its own API."""
    key = billit.secrets["api_key"]
    info = billit.get("/v1/account/accountInformation", {"ApiKey": key}).json()
    files: list[SourceFile] = []
    for company in info["Companies"]:
        headers = {"ApiKey": key, "PartyID": str(company["PartyID"])}
        for summary in _orders(billit, headers):
            order = billit.get(f"/v1/orders/{summary['OrderID']}", headers).json()
            refs = [order.get("OrderPDF"), *(order.get("Attachments") or [])]
            for ref in (r for r in refs if isinstance(r, dict) and r.get("FileID")):
                body = billit.get(f"/v1/files/{ref['FileID']}", headers).json()
                content = base64.b64decode(body["FileContent"])
                files.append(SourceFile(order["OrderID"], order.get("OrderNumber", ""), body.get("FileName", ""),
                                        hashlib.sha256(content).hexdigest(), order.get("OrderDirection") == "Cost"))
    return files


def _orders(billit: SandboxProcess, headers: dict[str, str]) -> Iterator[dict[str, Any]]:
    skip = 0
    while True:
        page = billit.get(f"/v1/orders?$top=120&$skip={skip}", headers).json()
        items = page["Items"] if isinstance(page, dict) else page
        yield from items
        if len(items) < 120:
            return
        skip += 120
