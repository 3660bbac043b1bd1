"""A document that changes after its export: the draft in Business Central follows, a posted one does not."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pytest
from invoicesync import (
    Account,
    Company,
    Context,
    Delivery,
    DeliveryStatus,
    Document,
    DocumentRef,
    NonInteractiveUI,
    PluginKind,
    PushRequest,
    hookimpl,
)
from invoicesync.accounts import connect
from invoicesync.pipeline import EXIT_OK, run_sync
from invoicesync.plugins import Plugins
from invoicesync.sandbox import RunningSandbox
from invoicesync.testing import MemorySource
from invoicesync.workspace import Workspace
from invoicesync_dynamics365 import plugin
from invoicesync_dynamics365.attachments import Attacher
from invoicesync_dynamics365.client import BusinessCentral
from invoicesync_dynamics365.sandbox import DEMO_SECRET, BusinessCentralSandbox
from invoicesync_dynamics365.sandbox._store import CompanyData, new_etag

WRITES = ("POST", "PATCH", "DELETE")


@dataclass(eq=False)  # plugins must stay hashable for pluggy
class DatedSource(MemorySource):
    """The memory source, with a due date per document that a test can change."""

    due: dict[str, date] = field(default_factory=dict)

    def __post_init__(self) -> None:
        MemorySource.__init__(self, 1)

    @hookimpl
    def fetch_document(self, account: Account, company: Company, ref: DocumentRef, ctx: Context) -> Document:
        document = MemorySource.fetch_document(self, account, company, ref, ctx)
        return document.model_copy(update={"due_date": self.due.get(ref.source_id, date(2026, 2, 1))})


@dataclass
class Sync:
    app: BusinessCentralSandbox
    company: CompanyData
    source: DatedSource
    workspace: Workspace

    def run(self) -> Any:
        report = run_sync(self.workspace)
        assert report.exit_code == EXIT_OK, report
        return report

    def invoice(self) -> dict[str, Any]:
        [invoice] = self.company.documents["purchaseInvoices"].values()
        return invoice

    def attachments(self) -> list[dict[str, Any]]:
        return list(self.company.attachments["documentAttachments"].values())

    def writes(self) -> int:
        return sum(self.app.count(m, r"/api/v2\.0/") for m in WRITES)

    def ledger(self) -> Delivery:
        delivery = self.workspace.state.get_delivery(self.invoice_document_id(), "bc")
        assert delivery is not None
        return delivery

    def invoice_document_id(self) -> str:
        return Document.make_id("memory", "src", "c1", "m0")


@pytest.fixture
def sync(workspace_factory: Callable[..., Workspace], serve_sandbox: Callable[..., RunningSandbox]) -> Sync:
    app = BusinessCentralSandbox()
    company = app.add_company("CRONUS BE")
    company.add_vendor("Supplier NV", "BE 0999.999.999")
    running = serve_sandbox(app, tls=True)
    app.ca_file = str(running.ca_file)
    source = DatedSource()
    workspace = workspace_factory(plugins=Plugins.from_objects({
        "memory": (PluginKind.SOURCE, source), "dynamics365": (PluginKind.TARGET, plugin)}))
    connect(workspace, "memory", ui=NonInteractiveUI(), name="src", companies=("*",))
    workspace.secrets("bc").set("client_secret", DEMO_SECRET)
    settings = {k: v for k, v in app.account_settings(running.url).items() if k != "create_missing_vendors"}
    connect(workspace, "dynamics365", ui=NonInteractiveUI(), name="bc", settings=settings, companies=("*",))
    first = Sync(app, company, source, workspace)
    first.run()
    assert len(first.attachments()) == 1
    return first


def test_changed_pdf_replaces_the_attachment(sync: Sync) -> None:
    before = sync.invoice()
    sync.source.touch("m0", pdf=b"%PDF-1.7 the supplier's corrected bill, a little longer\n")
    report = sync.run()
    assert report.exported["bc"]["delivered"] == 1, report
    assert sync.invoice()["id"] == before["id"] and sync.app.count("POST", r"/purchaseInvoices$") == 1
    [attachment] = sync.attachments()
    assert sync.app.content.read(attachment["id"]) == b"%PDF-1.7 the supplier's corrected bill, a little longer\n"
    assert attachment["byteSize"] == len(b"%PDF-1.7 the supplier's corrected bill, a little longer\n")
    assert sync.ledger().status is DeliveryStatus.DELIVERED
    assert (sync.ledger().message or "").startswith(f"draft {before['number']} updated")


def test_changed_due_date_is_patched_with_the_etag(sync: Sync) -> None:
    etag = sync.invoice()["@odata.etag"]
    sync.source.due["m0"] = date(2026, 3, 15)
    sync.source.touch("m0")
    sync.run()
    invoice = sync.invoice()
    assert invoice["dueDate"] == "2026-03-15" and invoice["@odata.etag"] != etag
    assert sync.app.document_patches == [(invoice["id"], etag, {"dueDate": "2026-03-15"})]
    assert "due date 2026-02-01 → 2026-03-15" in (sync.ledger().message or "")


def test_corrected_number_renames_the_draft_and_keeps_one_attachment(sync: Sync) -> None:
    old = sync.attachments()[0]
    sync.source.touch("m0", number="INV-0000-C", pdf=b"%PDF-1.7 corrected\n")
    sync.run()
    assert sync.invoice()["vendorInvoiceNumber"] == "INV-0000-C"
    [attachment] = sync.attachments()  # the new file in, the old record out
    assert attachment["fileName"] == "INV-0000-C.pdf" and attachment["id"] != old["id"]
    assert sync.app.content.read(attachment["id"]) == b"%PDF-1.7 corrected\n"
    assert sync.ledger().extra["attachments"] == {"INV-0000-C.pdf": attachment["id"]}


def test_posted_invoice_is_left_alone_with_the_reason(sync: Sync) -> None:
    invoice = sync.invoice()
    invoice["status"] = "Open"  # the accounts-payable team posted it
    content = sync.app.content.read(sync.attachments()[0]["id"])
    writes = sync.writes()
    sync.source.due["m0"] = date(2026, 5, 1)
    sync.source.touch("m0", pdf=b"%PDF-1.7 too late\n")
    report = sync.run()
    assert sync.writes() == writes and sync.invoice()["dueDate"] == "2026-02-01"
    assert sync.app.content.read(sync.attachments()[0]["id"]) == content
    [reason] = report.skipped_reasons["bc"]
    assert "already posted in Business Central" in reason and "the change was not applied" in reason
    assert "due date" in reason and "INV-0000.pdf" in reason
    assert sync.ledger().status is DeliveryStatus.SKIPPED and sync.ledger().target_id == invoice["id"]


def test_rerun_after_an_update_writes_nothing(sync: Sync) -> None:
    sync.source.due["m0"] = date(2026, 3, 15)
    sync.source.touch("m0", pdf=b"%PDF-1.7 second version\n")
    sync.run()
    writes = sync.writes()
    report = run_sync(sync.workspace, full=True)
    assert report.exit_code == EXIT_OK and sync.writes() == writes
    # Pushed again by hand with the ledger's row (as after a lost ledger write): still nothing.
    document = sync.workspace.state.get_document(sync.invoice_document_id())
    assert document is not None
    account = sync.workspace.account("bc")
    ctx = sync.workspace.context(account)
    try:
        [again] = plugin.push_documents(account, [PushRequest(document=document, previous=sync.ledger())], ctx)
    finally:
        ctx.close()
    assert again.status is DeliveryStatus.UNCHANGED, again.message
    assert sync.writes() == writes


def test_crash_mid_update_converges(sync: Sync, monkeypatch: pytest.MonkeyPatch) -> None:
    invoice, old = sync.invoice(), sync.attachments()[0]

    def crash(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("killed after the new attachment, before the old one was removed")

    monkeypatch.setattr(Attacher, "remove", crash)
    sync.source.due["m0"] = date(2026, 3, 15)
    sync.source.touch("m0", number="INV-0000-C", pdf=b"%PDF-1.7 corrected\n")
    report = run_sync(sync.workspace)
    assert report.exported["bc"].get("failed") == 1
    assert len(sync.attachments()) == 2  # half done: the new file is in, the old one not yet out
    monkeypatch.undo()
    sync.run()
    assert sync.invoice()["id"] == invoice["id"] and len(sync.company.documents["purchaseInvoices"]) == 1
    assert (sync.invoice()["dueDate"], sync.invoice()["vendorInvoiceNumber"]) == ("2026-03-15", "INV-0000-C")
    [attachment] = sync.attachments()
    assert attachment["id"] != old["id"] and sync.app.content.read(attachment["id"]) == b"%PDF-1.7 corrected\n"
    assert sync.app.count("POST", r"/documentAttachments$") == 2  # the first and the corrected file, once each
    writes = sync.writes()
    run_sync(sync.workspace, full=True)
    assert sync.writes() == writes


def test_killed_mid_update_is_found_from_the_pending_row(bc: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    [first] = bc.push(bc.document(pdf=b"%PDF-1.7 one\n"))
    monkeypatch.setattr(BusinessCentral, "upload_content", lambda *a, **k: (_ for _ in ()).throw(SystemExit()))
    changed = bc.document(pdf=b"%PDF-1.7 two, longer\n")
    with pytest.raises(SystemExit):
        bc.push(changed, previous=first)
    monkeypatch.undo()
    # What core shows after a kill: a pending row, no target_id, the last delivery's extra.
    pending = Delivery(document_id=changed.id, target="bc", version=changed.version,
                       status=DeliveryStatus.PENDING, extra=first.extra)
    [delivery] = bc.push(changed, previous=pending)
    assert delivery.status is DeliveryStatus.DELIVERED and delivery.target_id == first.target_id
    [attachment] = bc.attachments()
    assert bc.app.content.read(attachment["id"]) == b"%PDF-1.7 two, longer\n"
    assert len(bc.invoices()) == 1


# BC's code for a stale etag is documented (Request_EntityChanged), its status is not: 409 or 412.
@pytest.mark.parametrize("conflict_status", [412, 409])
def test_concurrent_edit_in_bc_is_read_again(make_bc: Any, monkeypatch: pytest.MonkeyPatch,
                                             conflict_status: int) -> None:
    bc = make_bc(conflict_status=conflict_status)
    document = bc.document()
    [first] = bc.push(document)
    first_etag = bc.invoices()[0]["@odata.etag"]
    real_get = BusinessCentral.get
    edits: list[str] = []

    def get_then_edit(self: BusinessCentral, company: str, path: str) -> dict[str, Any]:
        entity = real_get(self, company, path)
        if not edits:  # a person saves the draft in BC right after our read
            invoice = bc.invoices()[0]
            invoice.update({"postingDate": "2026-03-31", "@odata.etag": new_etag()})
            edits.append(invoice["@odata.etag"])
        return entity

    monkeypatch.setattr(BusinessCentral, "get", get_then_edit)
    changed = document.model_copy(update={"due_date": date(2026, 6, 30)})
    [delivery] = bc.push(changed, previous=first)
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    invoice = bc.invoices()[0]
    assert (invoice["dueDate"], invoice["postingDate"]) == ("2026-06-30", "2026-03-31")  # theirs kept too
    # The first PATCH carried the etag we had read and got 412; the second the one read again.
    assert [etag for _, etag, _ in bc.app.document_patches] == [first_etag, edits[0]]
    assert bc.app.count("PATCH", rf"/purchaseInvoices\({invoice['id']}\)$") == 2


def test_in_review_invoice_is_not_changed(bc: Any) -> None:
    document = bc.document()
    [first] = bc.push(document)
    bc.invoices()[0]["status"] = "In Review"
    [delivery] = bc.push(document.model_copy(update={"due_date": date(2026, 6, 30)}), previous=first)
    assert delivery.status is DeliveryStatus.SKIPPED and "in review" in (delivery.message or "")
    assert bc.invoices()[0]["dueDate"] == "2026-04-01"


def test_comment_line_follows_the_new_totals(bc: Any) -> None:
    from decimal import Decimal

    bc.set(lines="comment")
    document = bc.document()
    [first] = bc.push(document)
    changed = document.model_copy(update={"amount_incl_vat": Decimal("242.00")})
    [delivery] = bc.push(changed, previous=first)
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    [line] = bc.company.lines[bc.invoices()[0]["id"]]
    assert line["description"].startswith("invoicesync: total 242.00 EUR")


def test_new_number_that_another_draft_has_is_not_taken(bc: Any) -> None:
    bc.push(bc.document("INV-B").model_copy(update={"id": "other", "source_id": "other"}))
    document = bc.document("INV-A")
    [first] = bc.push(document)
    [delivery] = bc.push(document.model_copy(update={"number": "INV-B", "due_date": date(2026, 6, 30)}),
                         previous=first)
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    mine = next(i for i in bc.invoices() if i["id"] == first.target_id)
    assert (mine["vendorInvoiceNumber"], mine["dueDate"]) == ("INV-A", "2026-06-30")
    assert "keeps 'INV-A'" in (delivery.message or "")
