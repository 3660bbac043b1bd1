"""Done-when proof of "works against the real services", through the real ``invoicesync`` command
(a subprocess) with every bundled sandbox: the Billit sandbox (default seed: signed terms PDFs,
.xlsx specifications, JPEG receipts, image-only purchases) as source; a local folder, Dropbox,
Google Drive and Business Central as targets.

Every count below is read from each service's OWN store (the folder, the Dropbox namespace, the
Drive store, BC's attachment records), and what should be there from the Billit sandbox's own
files, never from our ledger."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from invoicesync.accounts import connect, connect_to_sandbox
from invoicesync.context import NonInteractiveUI
from invoicesync.sandbox import RunningSandbox, serve
from invoicesync.workspace import Workspace

pytest.importorskip("invoicesync_billit")
pytest.importorskip("invoicesync_dropbox")
pytest.importorskip("invoicesync_gdrive")
pytest.importorskip("invoicesync_dynamics365")
from invoicesync_billit.settings import BillitSettings

FOLDER_MIME = "application/vnd.google-apps.folder"
SERVICES = ("billit", "dropbox", "gdrive", "dynamics365")
ORDERS_PER_COMPANY = 20


@dataclass
class Services:
    home: Path
    folder: Path
    apps: dict[str, Any]
    running: dict[str, RunningSandbox]

    def reconnect(self, name: str, **settings: Any) -> None:
        """Change a target account's settings the way ``connect`` does (merged over the old ones)."""
        with Workspace.open(self.home) as workspace:
            if name == "folder":
                connect(workspace, "localfs", ui=NonInteractiveUI(), name="folder", settings=settings)
            else:
                connect_to_sandbox(workspace, name, self.running[name], name=name, settings=settings)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "invoicesync", *args], capture_output=True, text=True,
                          timeout=300, check=False)


def sync_json() -> dict[str, Any]:
    done = cli("sync", "--json")
    assert done.returncode == 0, (done.stdout, done.stderr)
    report: dict[str, Any] = json.loads(done.stdout)
    return report


@pytest.fixture
def services(invoicesync_home: Path, tmp_path: Path) -> Iterator[Services]:
    """Every sandbox on loopback (BC over TLS), one account each, plus a local folder."""
    started = Services(invoicesync_home, tmp_path / "archive", {}, {})
    try:
        with Workspace.open(invoicesync_home) as workspace:
            for name in SERVICES:
                options = {"seed": 1, "documents": ORDERS_PER_COMPANY} if name == "billit" else {"seed": 1}
                app = workspace.plugins.call(name, "sandbox", options=options)
                started.apps[name] = app
                started.running[name] = serve(app, tls=getattr(app, "tls", False), tls_dir=tmp_path / "ca" / name)
                connect_to_sandbox(workspace, name, started.running[name], name=name)
            connect(workspace, "localfs", ui=NonInteractiveUI(), name="folder",
                    settings={"root": str(started.folder)})
        yield started
    finally:
        for running in started.running.values():
            running.stop()
        if "gdrive" in started.apps:
            started.apps["gdrive"].store.close()


# -- what should be there: the Billit sandbox's own orders and files --------------------------


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def billit_orders(app: Any) -> dict[int, dict[str, Any]]:
    """The live orders an account with default settings imports (its ``order_types``: offers and
    delivery notes are not invoices)."""
    wanted = {str(t) for t in BillitSettings.model_fields["order_types"].get_default(call_default_factory=True)}
    with app.data_lock:
        return {order_id: order for company in app.companies for order_id, order in company.orders.items()
                if order["OrderType"] in wanted}


def order_files(app: Any, order: dict[str, Any]) -> Counter[str]:
    """The sha256 of every file Billit holds for an order: its PDF and every attachment."""
    entries = [order.get("OrderPDF"), *(order.get("Attachments") or [])]
    with app.data_lock:
        stored = [app.files[str(e["FileID"])] for e in entries if isinstance(e, dict)]
    return Counter(_sha(b"".join(f.render())) for f in stored)


def files_of(app: Any, orders: dict[int, dict[str, Any]]) -> Counter[str]:
    wanted: Counter[str] = Counter()
    for order in orders.values():
        wanted.update(order_files(app, order))
    return wanted


def purchases(orders: dict[int, dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {i: o for i, o in orders.items() if o["OrderDirection"] == "Cost"}


# -- what is there: each target's own store -----------------------------------------------------


def on_disk(root: Path, *, under_deleted: bool = False) -> Counter[str]:
    """The document files in the folder (localfs also writes each document's data as ``.json``)."""
    found: Counter[str] = Counter()
    for path in root.rglob("*"):
        if path.is_file() and path.suffix != ".json" \
                and (path.relative_to(root).parts[0] == "_deleted") == under_deleted:
            found[_sha(path.read_bytes())] += 1
    return found


def in_dropbox(app: Any) -> Counter[str]:
    with app.namespace.lock:
        blobs = [e.blob for e in app.namespace.entries.values() if e.kind == "file" and e.blob is not None]
    return Counter(_sha(blob.read_bytes()) for blob in blobs)


def in_dropbox_deleted(app: Any) -> Counter[str]:
    with app.namespace.lock:
        blobs = [e.blob for e in app.namespace.deleted.values() if e.kind == "file" and e.blob is not None]
    return Counter(_sha(blob.read_bytes()) for blob in blobs)


def in_drive(app: Any, *, trashed: bool = False) -> Counter[str]:
    with app.store.lock:
        files = [f for f in app.store.files.values() if f.mime_type != FOLDER_MIME and f.trashed == trashed]
    return Counter(str(f.sha256) for f in files)


def in_bc(app: Any) -> dict[str, Counter[str]]:
    """The sha256 of every file attached to each BC purchase document, by its vendorInvoiceNumber."""
    attached: dict[str, Counter[str]] = {}
    for company in list(app.companies.values()):
        by_id = {d["id"]: d for docs in company.documents.values() for d in list(docs.values())}
        for document in by_id.values():
            attached.setdefault(document["vendorInvoiceNumber"], Counter())
        for records in company.attachments.values():
            for record in list(records.values()):
                parent = by_id.get(record["parentId"])
                key = parent["vendorInvoiceNumber"] if parent else f"orphan {record['parentId']}"
                attached.setdefault(key, Counter())[_sha(app.content.read(record["id"]))] += 1
    return attached


def expected_in_bc(billit: Any, orders: dict[int, dict[str, Any]]) -> dict[str, Counter[str]]:
    return {o["OrderNumber"]: order_files(billit, o) for o in purchases(orders).values()}


def delete_in_billit(services: Services, order_id: int) -> None:
    """Through the sandbox's admin API, as a person deleting the order in Billit would."""
    request = urllib.request.Request(f"{services.running['billit'].url}/__sandbox__/orders/{order_id}",
                                     method="DELETE")
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 200


def snapshot(services: Services) -> tuple[Any, ...]:
    apps = services.apps
    return (on_disk(services.folder), on_disk(services.folder, under_deleted=True), in_dropbox(apps["dropbox"]),
            in_dropbox_deleted(apps["dropbox"]), in_drive(apps["gdrive"]), in_drive(apps["gdrive"], trashed=True),
            in_bc(apps["dynamics365"]))


# -- the proof ------------------------------------------------------------------------------------


def test_every_file_everywhere_once_then_deletions_follow_each_policy(services: Services) -> None:
    billit, bc = services.apps["billit"], services.apps["dynamics365"]
    orders = billit_orders(billit)
    # The default seed really carries what this proves: extra attachments and image-only purchases.
    assert any(len(o.get("Attachments") or []) >= 2 for o in orders.values())
    image_only = [o for o in orders.values() if o.get("_no_pdf")]
    assert image_only and all(o["OrderDirection"] == "Cost" for o in image_only)
    wanted = files_of(billit, orders)

    first = sync_json()
    assert first["imported"] == {"new": len(orders)}, first
    for target in ("folder", "dropbox", "gdrive"):
        assert first["exported"][target] == {"delivered": len(orders)}, first
    assert first["exported"]["dynamics365"] == {"delivered": len(purchases(orders)),
                                                "skipped": len(orders) - len(purchases(orders))}, first
    assert on_disk(services.folder) == wanted
    assert in_dropbox(services.apps["dropbox"]) == wanted
    assert in_drive(services.apps["gdrive"]) == wanted
    assert in_bc(bc) == expected_in_bc(billit, orders)

    before = snapshot(services)
    second = sync_json()
    assert second["exported"] == {} and second["imported"].get("new", 0) == 0, second
    assert snapshot(services) == before, "a second run changed a target"

    # Defaults: the file targets keep the files (skipped, with the reason); BC deletes its draft.
    doomed = next(o for o in purchases(orders).values() if len(o.get("Attachments") or []) >= 1
                  and not o.get("_no_pdf"))
    delete_in_billit(services, doomed["OrderID"])
    done = cli("sync")
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert "1 deleted" in done.stdout, done.stdout  # the import side reports it
    assert "→ dynamics365: 1 deleted" in done.stdout, done.stdout
    after_default = snapshot(services)
    assert after_default[:6] == before[:6], "on_delete = keep (the default) touched a file target"
    expected_bc = expected_in_bc(billit, billit_orders(billit))
    assert in_bc(bc) == expected_bc and doomed["OrderNumber"] not in in_bc(bc)

    # Non-defaults: the folder moves aside, Dropbox and Drive trash, BC keeps its draft.
    services.reconnect("folder", on_delete="move")
    services.reconnect("dropbox", on_delete="trash")
    services.reconnect("gdrive", on_delete="trash")
    services.reconnect("dynamics365", on_delete="keep")
    gone = next(o for o in purchases(billit_orders(billit)).values() if o.get("_no_pdf"))
    gone_files = order_files(billit, gone)
    delete_in_billit(services, gone["OrderID"])
    unchanged = snapshot(services)
    dry = cli("sync", "--dry-run")
    assert dry.returncode == 0 and snapshot(services) == unchanged, dry.stdout
    # A dry run says what a deletion would do to the files, never that it would write them.
    assert "would write" not in dry.stdout and "deleted at the source:" in dry.stdout, dry.stdout
    assert "folder: would move" in dry.stdout and "gdrive: would move to the Drive trash" in dry.stdout, dry.stdout
    report = sync_json()
    for target in ("folder", "dropbox", "gdrive"):
        assert report["exported"][target] == {"deleted": 1}, report
    assert report["exported"]["dynamics365"] == {"skipped": 1}, report
    assert on_disk(services.folder) == wanted - gone_files
    assert on_disk(services.folder, under_deleted=True) == gone_files
    assert in_dropbox(services.apps["dropbox"]) == wanted - gone_files
    assert in_dropbox_deleted(services.apps["dropbox"]) == gone_files
    assert in_drive(services.apps["gdrive"]) == wanted - gone_files
    assert in_drive(services.apps["gdrive"], trashed=True) == gone_files
    assert in_bc(bc) == expected_bc  # kept: still holds the image-only purchase's draft

    listing = json.loads(cli("documents", "--deleted", "--json").stdout)
    assert sorted(d["number"] for d in listing) == sorted([doomed["OrderNumber"], gone["OrderNumber"]])
    by_number = {d["number"]: d["deliveries"] for d in listing}
    assert by_number[doomed["OrderNumber"]] == {"folder": "skipped", "dropbox": "skipped", "gdrive": "skipped",
                                             "dynamics365": "deleted"}
    assert by_number[gone["OrderNumber"]] == {"folder": "deleted", "dropbox": "deleted", "gdrive": "deleted",
                                           "dynamics365": "skipped"}
    quiet = sync_json()
    assert quiet["exported"] == {}, quiet


def test_narrowing_files_then_widening_back_fills_without_full(services: Services) -> None:
    billit = services.apps["billit"]
    drive = services.apps["gdrive"]
    assert sync_json()["exit_code"] == 0
    services.reconnect("gdrive", files=["pdf", "ubl"])
    # New orders while Drive takes only PDFs and UBLs: one with every kind of extra, one image-only.
    # (No Peppol UBL on either: the photo must be all the image-only purchase has.)
    with_extras = billit.add_order(OrderType="Invoice", OrderDirection="Cost", ExternalProvider=None,
                                   _extras=["terms", "specification", "receipt"])
    photo_only = billit.add_order(OrderType="Invoice", OrderDirection="Cost", ExternalProvider=None,
                                  _no_pdf=True, _extras=["receipt"])
    narrowed = sync_json()
    assert narrowed["imported"]["new"] == 2, narrowed
    assert narrowed["skipped_reasons"]["gdrive"] == {
        "has none of the files this target takes (files = pdf, ubl)": 1 + sum(
            1 for o in billit_orders(billit).values() if o.get("_no_pdf") and o["OrderID"] != photo_only["OrderID"])
    }, narrowed
    main_pdf = Counter({_sha(b"".join(billit.files[str(with_extras["OrderPDF"]["FileID"])].render())): 1})
    old = files_of(billit, {i: o for i, o in billit_orders(billit).items()
                            if i not in (with_extras["OrderID"], photo_only["OrderID"])})
    assert in_drive(drive) == old + main_pdf, "a narrowed Drive got files it was not asked for"

    services.reconnect("gdrive", files="")
    widened = sync_json()
    assert widened["exported"]["gdrive"].get("failed", 0) == 0, widened
    assert in_drive(drive) == files_of(billit, billit_orders(billit)), "widening did not back-fill exactly once"
    assert sync_json()["exported"] == {}
