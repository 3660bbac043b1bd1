"""Done-when proof of the webhooks: the dashboard served over TLS (a throw-away CA the Billit sandbox
is told to trust, as Billit delivers to https only), an order edited in the Billit sandbox, its
signed webhook, and the edited order's PDF in the local folder and in Dropbox within 10 seconds,
with no scheduled or manual run in between."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
import uvicorn
from invoicesync import PluginKind
from invoicesync.accounts import connect, connect_to_sandbox
from invoicesync.builtins import localfs
from invoicesync.context import NonInteractiveUI
from invoicesync.pipeline import EXIT_OK, run_sync
from invoicesync.plugins import Plugins
from invoicesync.sandbox import RunningSandbox
from invoicesync.server import Users, create_app
from invoicesync.workspace import Workspace

from .conftest import ADMIN, PASSWORD

billit_plugin = pytest.importorskip("invoicesync_billit.plugin")
dropbox_plugin = pytest.importorskip("invoicesync_dropbox.plugin")
from invoicesync_billit.sandbox import BillitSandbox  # noqa: E402
from invoicesync_dropbox.sandbox import DropboxSandbox  # noqa: E402

DONE_WITHIN = 10.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _folder(root: Path) -> set[str]:
    return {_sha(p.read_bytes()) for p in root.rglob("*") if p.is_file() and p.suffix == ".pdf"}


def _dropbox(app: DropboxSandbox) -> set[str]:
    with app.namespace.lock:
        blobs = [e.blob for e in app.namespace.entries.values() if e.kind == "file" and e.blob is not None]
    return {_sha(blob.read_bytes()) for blob in blobs}


def _pdf(app: BillitSandbox, order_id: int) -> bytes:
    order = next(c.orders[order_id] for c in app.companies if order_id in c.orders)
    return b"".join(app.files[order["OrderPDF"]["FileID"].lower()].render())


@pytest.fixture
def tls_dashboard(tmp_path: Path) -> Iterator[Callable[[Workspace], tuple[str, Any]]]:
    """``start(workspace)``: the dashboard over HTTPS on loopback, its certificate from a throw-away
    CA (written to ``tmp_path/ca.pem``); stopped at teardown."""
    started: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(workspace: Workspace) -> tuple[str, Any]:
        ca = trustme.CA()
        ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
        ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
        port = _free_port()
        public_url = f"https://127.0.0.1:{port}"
        app = create_app(workspace, public_url=public_url)
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                               ssl_certfile=str(tmp_path / "server.pem")))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        started.append((server, thread))
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline, "the dashboard did not start"
            time.sleep(0.05)
        return public_url, app

    yield start
    for server, thread in started:
        server.should_exit = True
        thread.join(30)


def test_an_order_edited_in_billit_reaches_every_target_within_10_seconds_by_its_webhook(
        workspace_factory: Callable[..., Workspace], serve_sandbox: Callable[..., RunningSandbox],
        tls_dashboard: Callable[[Workspace], tuple[str, Any]], tmp_path: Path) -> None:
    billit, dropbox = BillitSandbox(documents=5, companies=2, seed=11), DropboxSandbox(retry_after=0)
    plugins = Plugins.from_objects({"billit": (PluginKind.SOURCE, billit_plugin),
                                    "dropbox": (PluginKind.TARGET, dropbox_plugin)})
    plugins.register("localfs", localfs, kind=PluginKind.TARGET)
    workspace = workspace_factory(plugins)
    connect_to_sandbox(workspace, "billit", serve_sandbox(billit), name="books")
    root = tmp_path / "archive"
    connect(workspace, "localfs", ui=NonInteractiveUI(), name="folder", settings={"root": str(root)})
    connect_to_sandbox(workspace, "dropbox", serve_sandbox(dropbox), name="dropbox")
    assert run_sync(workspace).exit_code == EXIT_OK  # everything there once, as any earlier run leaves it
    Users(workspace.home).add(ADMIN, PASSWORD)

    public_url, app = tls_dashboard(workspace)
    billit.webhook_verify = str(tmp_path / "ca.pem")  # Billit trusts public CAs; the sandbox, this one
    deadline = time.monotonic() + 30
    # Registered on both sides: Order I and U for each of the two companies at Billit, and their secrets
    # kept here (a delivery in the instant between the two is refused, and retried by the sender).
    while len(billit.webhooks) < 4 or len(workspace.state.webhooks("books")) < 2:
        assert time.monotonic() < deadline, f"not registered: {app.state.webhooks.problems}"
        time.sleep(0.05)
    assert {h["WebhookURL"] for h in billit.webhooks.values()} == {
        f"{public_url}/webhooks/books/{c.party_id}" for c in billit.companies}

    company = billit.companies[1]
    order_id = next(i for i, o in sorted(company.orders.items())  # one the default settings import, with a PDF
                    if o.get("OrderPDF") and o.get("OrderType") in ("Invoice", "CreditNote"))
    before = _sha(_pdf(billit, order_id))
    assert before in _folder(root) and before in _dropbox(dropbox)
    edited_at = time.monotonic()
    billit.edit_order(order_id, PaymentReference="+++090/9337/55493+++", Reference="webhook test")
    after = _sha(_pdf(billit, order_id))
    assert after != before
    while not (after in _folder(root) and after in _dropbox(dropbox)):
        assert time.monotonic() - edited_at < 60, "the edited order never reached the targets"
        time.sleep(0.05)
    latency = time.monotonic() - edited_at
    print(f"webhook → targets latency: {latency:.2f} s")  # the figure the report quotes (pytest -s)

    delivered = [d for d in billit.webhook_deliveries if d.status is not None]
    assert [d.status for d in delivered] == [200]  # one delivery (the U hook), accepted at once, over TLS
    jobs = app.state.webhooks.debouncer.started
    assert len(jobs) == 1 and jobs[0].companies == {"books": (str(company.party_id),)}
    assert latency < DONE_WITHIN, f"{latency:.1f} s from the edit to both targets"
