"""What the browser test runs against: the Billit, Dropbox and Business Central sandboxes on real
sockets, and the dashboard on loopback over a home with no account yet.

The OAuth sandboxes are as strict as the services: each has the dashboard's ``/oauth/callback``
registered for its client, as the service's console (or Billit support) would.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from invoicesync.plugins import Plugins
from invoicesync.sandbox import Request, RunningSandbox, serve
from invoicesync.server import Users, create_app
from invoicesync.workspace import Workspace

from .conftest import ADMIN, PASSWORD

#: Billit companies in the sandbox; the test chooses two of them.
BILLIT_COMPANIES = 3
DOCUMENTS_PER_COMPANY = 4
SECOND_BC_COMPANY = "CRONUS Second Ltd"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class World:
    dashboard: str
    workspace: Workspace
    billit: Any  #: the BillitSandbox app
    billit_url: str
    dropbox: Any  #: the DropboxSandbox app
    dropbox_url: str
    bc: Any  #: the BusinessCentralSandbox app
    bc_url: str
    bc_ca: str
    #: Billit's order and file requests wait for this while it is clear (to watch a sync in progress).
    billit_open: threading.Event

    def hold_billit(self) -> None:
        self.billit_open.clear()

    def release_billit(self) -> None:
        self.billit_open.set()


def start_dashboard(workspace: Workspace, port: int) -> tuple[uvicorn.Server, threading.Thread]:
    server = uvicorn.Server(uvicorn.Config(create_app(workspace), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the dashboard did not start"
        time.sleep(0.05)
    return server, thread


@pytest.fixture(name="world")
def world_fixture(invoicesync_home: Path) -> Iterator[World]:
    workspace = Workspace.open(invoicesync_home, plugins=Plugins.discover(["billit", "dropbox", "dynamics365"]))
    port = _free_port()
    callback = f"http://127.0.0.1:{port}/oauth/callback"
    running: list[RunningSandbox] = []

    def start(name: str, options: dict[str, Any]) -> RunningSandbox:
        app = workspace.plugins.call(name, "sandbox", options=options)
        running.append(serve(app, tls=getattr(app, "tls", False), tls_dir=invoicesync_home / "sandbox-ca" / name))
        return running[-1]

    billit_open = threading.Event()
    billit_open.set()
    try:
        billit = start("billit", {"documents": DOCUMENTS_PER_COMPANY, "seed": 5, "companies": BILLIT_COMPANIES})
        billit_app: Any = billit.app  # the plugins' own sandbox classes
        billit_app.oauth.register_redirect(callback)

        def gate(_request: Request) -> None:
            assert billit_open.wait(60), "the test never let the Billit sandbox answer"

        billit_app.arrival_hooks.append(gate)
        dropbox = start("dropbox", {"seed": 1})
        dropbox_app: Any = dropbox.app
        dropbox_app.oauth.redirects.register(callback)
        bc = start("dynamics365", {"seed": 1})
        bc_app: Any = bc.app
        bc_app.add_company(SECOND_BC_COMPANY)  # so connecting asks which company
        assert bc.ca_file, "the Business Central sandbox serves TLS"
        Users(invoicesync_home).add(ADMIN, PASSWORD)
        server, thread = start_dashboard(workspace, port)
        try:
            yield World(f"http://127.0.0.1:{port}", workspace, billit.app, billit.url, dropbox.app, dropbox.url,
                        bc.app, bc.url, str(bc.ca_file), billit_open)
        finally:
            billit_open.set()
            server.should_exit = True
            thread.join(30)
    finally:
        for sandbox in running:
            sandbox.stop()
        workspace.close()


def alnum(text: str) -> str:
    """Letters and digits only: a document number as it survives in a file name."""
    return re.sub(r"[^0-9A-Za-z]", "", text).lower()
