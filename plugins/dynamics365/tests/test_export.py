"""Export through the real client, over TLS, against the Business Central sandbox."""

from __future__ import annotations

from typing import Any

import pytest
from invoicesync import DeliveryStatus, Direction, DocumentKind
from invoicesync_dynamics365.attachments import Attacher

from .conftest import FakeClock

INVOICES = r"/purchaseInvoices$"


def test_draft_invoice_with_pdf_and_ubl_attached(bc: Any) -> None:
    document = bc.document(pdf=b"%PDF-1.7 the real bytes\n" * 1000, ubl=b"<Invoice/>")
    [delivery] = bc.push(document)
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    [invoice] = bc.invoices()
    vendor = next(v for v in bc.company.vendors.values() if v["displayName"] == "Brouwerij De Klok NV")
    assert invoice["status"] == "Draft"
    assert invoice["vendorNumber"] == vendor["number"]
    assert invoice["vendorInvoiceNumber"] == "INV-2026-001"
    assert (invoice["invoiceDate"], invoice["dueDate"], invoice["currencyCode"]) == ("2026-03-02", "2026-04-01", "EUR")
    assert delivery.target_id == invoice["id"]
    assert delivery.extra["attachment_entity"] == "documentAttachments"
    attachments = {a["fileName"]: a for a in bc.attachments()}
    assert set(attachments) == {"INV-2026-001.pdf", "INV-2026-001.xml"}
    pdf = attachments["INV-2026-001.pdf"]
    assert (pdf["parentId"], pdf["parentType"]) == (invoice["id"], "Purchase Invoice")
    assert bc.app.content.read(pdf["id"]) == b"%PDF-1.7 the real bytes\n" * 1000
    assert pdf["byteSize"] == len(b"%PDF-1.7 the real bytes\n") * 1000
    assert bc.app.content.read(attachments["INV-2026-001.xml"]["id"]) == b"<Invoice/>"
    assert bc.company.lines[invoice["id"]] == []  # header only by default
    assert bc.company.posted == 0 and bc.app.count("POST", r"Microsoft\.NAV\.post") == 0


def test_rerun_creates_nothing(bc: Any) -> None:
    document = bc.document()
    assert bc.push(document)[0].status is DeliveryStatus.DELIVERED
    writes = sum(bc.app.count(m, r"/api/v2\.0/") for m in ("POST", "PATCH", "DELETE"))
    [again] = bc.push(document)
    assert again.status is DeliveryStatus.UNCHANGED, again.message
    assert sum(bc.app.count(m, r"/api/v2\.0/") for m in ("POST", "PATCH", "DELETE")) == writes
    assert len(bc.invoices()) == 1 and len(bc.attachments()) == 1


def test_vendor_matched_by_normalised_vat(bc: Any) -> None:
    # BC holds "BE 0412.345.678"; the document says BE0412345678 and has another name.
    [delivery] = bc.push(bc.document(supplier="De Klok (trading name)", vat="BE0412.345.678"))
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert bc.invoices()[0]["vendorName"] == "Brouwerij De Klok NV"


def test_vendor_vat_scan_follows_next_links(make_bc: Any) -> None:
    bc = make_bc(page_size=2)
    for i in range(7):
        bc.company.add_vendor(f"Filler {i}", f"FR{i:011d}")
    bc.company.add_vendor("Far Away SA", "fr 12 345 678 901")
    [delivery] = bc.push(bc.document(supplier="Far Away", vat="FR12345678901"))
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert bc.invoices()[0]["vendorName"] == "Far Away SA"
    assert bc.app.count("GET", r"/vendors$") >= 5  # the scan went through several pages


def test_vendor_matched_by_exact_name(bc: Any) -> None:
    [delivery] = bc.push(bc.document(supplier="Office Supplies BV", vat=None))
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert bc.invoices()[0]["vendorName"] == "Office Supplies BV"


def test_vendor_not_found_then_added_succeeds(bc: Any) -> None:
    document = bc.document(supplier="Nouveau Fournisseur SRL", vat="BE0555.666.777")
    [failed] = bc.push(document)
    assert failed.status is DeliveryStatus.FAILED
    assert failed.message.startswith("vendor not found: Nouveau Fournisseur SRL, VAT BE0555666777")
    assert bc.invoices() == [] and bc.app.count("POST", r"/vendors$") == 0
    bc.company.add_vendor("Nouveau Fournisseur", "BE0555666777")
    [delivered] = bc.push(document)
    assert delivered.status is DeliveryStatus.DELIVERED, delivered.message


def test_missing_vendor_created_when_enabled(bc: Any) -> None:
    bc.set(create_missing_vendors=True)
    [delivery] = bc.push(bc.document(supplier="Nouveau Fournisseur SRL", vat="BE 0555.666.777"))
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    created = next(v for v in bc.company.vendors.values() if v["displayName"] == "Nouveau Fournisseur SRL")
    assert created["taxRegistrationNumber"] == "BE0555666777"
    assert bc.invoices()[0]["vendorNumber"] == created["number"]


def test_crash_after_invoice_before_attachment_is_repaired(bc: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    document = bc.document()

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise SystemExit("killed between the invoice and its attachment")

    monkeypatch.setattr(Attacher, "attach", crash)
    with pytest.raises(SystemExit):
        bc.push(document)
    assert len(bc.invoices()) == 1 and bc.attachments() == []
    monkeypatch.undo()
    [delivery] = bc.push(document)
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert "completed the existing draft" in delivery.message
    assert len(bc.invoices()) == 1 and bc.app.count("POST", INVOICES) == 1
    [attachment] = bc.attachments()
    assert attachment["parentId"] == bc.invoices()[0]["id"] and attachment["byteSize"] > 0


def test_crash_between_attachment_metadata_and_content_is_repaired(bc: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from invoicesync_dynamics365.client import BusinessCentral

    document = bc.document()
    monkeypatch.setattr(BusinessCentral, "upload_content", lambda *a, **k: (_ for _ in ()).throw(SystemExit()))
    with pytest.raises(SystemExit):
        bc.push(document)
    [empty] = bc.attachments()
    assert empty["byteSize"] == 0
    monkeypatch.undo()
    [delivery] = bc.push(document)
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    [attachment] = bc.attachments()  # the same record, now with its content
    assert attachment["id"] == empty["id"] and attachment["byteSize"] == document.pdf.size
    assert bc.app.count("POST", r"/documentAttachments$") == 1 and bc.app.count("POST", INVOICES) == 1


def test_lost_answer_to_create_is_looked_up_not_resent(bc: Any) -> None:
    # The invoice is created, then the connection drops before the answer: OutcomeUnknown.
    bc.app.add_fault({"action": "drop_after", "method": "POST", "path": INVOICES})
    [delivery] = bc.push(bc.document())
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    # One invoice exists, made by the single (unanswered) POST: the number series moved once.
    assert len(bc.invoices()) == 1 and bc.company.numbers["purchaseInvoices"] == 108010
    assert bc.app.count("POST", INVOICES) == 0  # the dropped POST is never logged as answered
    assert len(bc.attachments()) == 1


def test_vendor_invoice_number_over_35_characters_fails_clearly(bc: Any) -> None:
    number = "INV-" + "9" * 32  # 36 characters
    [delivery] = bc.push(bc.document(number))
    assert delivery.status is DeliveryStatus.FAILED
    assert "field number" in delivery.message and "at most 35" in delivery.message and "36" in delivery.message
    assert bc.app.count("POST", r"/api/v2\.0/") == 0


def test_throttling_retry_after_is_honoured(bc: Any) -> None:
    bc.app.add_fault("status:status=429,headers.Retry-After=3,times=2,path=/vendors$")
    clock = FakeClock()
    [delivery] = bc.push(bc.document(), clock=clock)
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    throttled = [r for r in bc.app.requests if r[2] == 429]
    assert len(throttled) == 2 and len(bc.invoices()) == 1
    assert clock.at - 1000.0 >= 6, clock.waits  # both retries waited the 3 s BC asked for


def test_throttling_by_rate_limit_without_retry_after(make_bc: Any) -> None:
    bc = make_bc(rate_limit=4, rate_window=1.0)
    [delivery] = bc.push(bc.document())  # real waits: the sandbox's window is wall-clock time
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert any(status == 429 for _, _, status in bc.app.requests)
    assert len(bc.invoices()) == 1


def test_sales_documents_are_skipped(bc: Any) -> None:
    [delivery] = bc.push(bc.document(direction=Direction.SALES))
    assert delivery.status is DeliveryStatus.SKIPPED
    assert delivery.message == "sales documents are not exported to Business Central"
    assert bc.app.requests == []


def test_credit_note_becomes_a_draft_purchase_credit_memo(bc: Any) -> None:
    [delivery] = bc.push(bc.document("CN-17", kind=DocumentKind.CREDIT_NOTE))
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert bc.invoices() == []
    [memo] = bc.company.documents["purchaseCreditMemos"].values()
    assert (memo["vendorCreditMemoNumber"], memo["creditMemoDate"], memo["status"]) == ("CN-17", "2026-03-02", "Draft")
    [attachment] = bc.attachments()
    assert (attachment["parentType"], attachment["parentId"]) == ("Purchase Credit Memo", memo["id"])
    assert bc.push(bc.document("CN-17", kind=DocumentKind.CREDIT_NOTE))[0].status is DeliveryStatus.UNCHANGED


def test_falls_back_to_attachments_where_document_attachments_is_missing(make_bc: Any) -> None:
    bc = make_bc(document_attachments=False)
    [delivery] = bc.push(bc.document())
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert delivery.extra["attachment_entity"] == "attachments"
    [attachment] = bc.attachments("attachments")
    assert attachment["parentId"] == bc.invoices()[0]["id"] and attachment["byteSize"] > 0
    # Remembered: the next document goes straight to attachments.
    before = bc.app.count("GET", r"/documentAttachments$")
    assert bc.push(bc.document("INV-2026-002"))[0].status is DeliveryStatus.DELIVERED
    assert bc.app.count("GET", r"/documentAttachments$") == before


def test_credit_memo_refused_before_creating_when_only_incoming_attachments(make_bc: Any) -> None:
    bc = make_bc(document_attachments=False)
    bc.push(bc.document())  # learns that the tenant lacks documentAttachments
    [delivery] = bc.push(bc.document("CN-18", kind=DocumentKind.CREDIT_NOTE))
    assert delivery.status is DeliveryStatus.FAILED and "credit memo" in delivery.message
    assert bc.company.documents["purchaseCreditMemos"] == {}


def test_comment_line_summarises_totals(bc: Any) -> None:
    bc.set(lines="comment")
    document = bc.document()
    assert bc.push(document)[0].status is DeliveryStatus.DELIVERED
    [line] = bc.company.lines[bc.invoices()[0]["id"]]
    assert line["lineType"] == "Comment"
    assert "121.00 EUR" in line["description"] and "VAT 21.00" in line["description"]
    assert bc.push(document)[0].status is DeliveryStatus.UNCHANGED
    assert len(bc.company.lines[bc.invoices()[0]["id"]]) == 1


def test_dry_run_plans_and_writes_nothing(bc: Any) -> None:
    [delivery] = bc.push(bc.document(), dry_run=True)
    assert delivery.status is DeliveryStatus.PLANNED and "would create" in (delivery.message or "")
    assert sum(bc.app.count(m, r"/api/v2\.0/") for m in ("POST", "PATCH", "DELETE")) == 0


def test_bc_error_body_becomes_a_clear_document_message(bc: Any) -> None:
    document = bc.document().model_copy(update={"currency": "XYZ"})
    [delivery] = bc.push(document)
    assert delivery.status is DeliveryStatus.FAILED
    assert "Internal_InvalidTableRelation" in delivery.message and "XYZ" in delivery.message
    assert "INV-2026-001" in delivery.message


def test_posted_invoice_is_recorded_not_touched(bc: Any) -> None:
    document = bc.document()
    bc.push(document)
    invoice = bc.invoices()[0]
    invoice["status"] = "Open"  # someone posted it in BC
    [delivery] = bc.push(document)
    assert delivery.status is DeliveryStatus.UNCHANGED and delivery.target_id == invoice["id"]


def _twin(bc: Any, source_id: str, pdf: bytes, **kwargs: Any) -> Any:
    """Another source document with the same vendor invoice number (its own id and PDF)."""
    document = bc.document(pdf=pdf, **kwargs)
    return document.model_copy(update={"id": f"{document.id}#{source_id}", "source_id": source_id})


def test_same_number_from_one_vendor_gets_a_draft_each_and_stays_idempotent(bc: Any) -> None:
    # Equal sizes on purpose: only the bytes tell the two PDFs apart.
    first, second = _twin(bc, "a", b"%PDF-1.7 first  copy\n"), _twin(bc, "b", b"%PDF-1.7 second copy\n")
    assert [d.status for d in bc.push(first, second)] == [DeliveryStatus.DELIVERED] * 2
    drafts = bc.invoices()
    assert len(drafts) == 2 and {d["vendorInvoiceNumber"] for d in drafts} == {"INV-2026-001"}
    by_parent = {a["parentId"]: bc.app.content.read(a["id"]) for a in bc.attachments()}
    assert sorted(by_parent.values()) == sorted([b"%PDF-1.7 first  copy\n", b"%PDF-1.7 second copy\n"])
    assert set(by_parent) == {d["id"] for d in drafts}
    # No ledger, no notes (a fresh push): each finds its own draft by its PDF and writes nothing.
    writes = sum(bc.app.count(m, r"/api/v2\.0/") for m in ("POST", "PATCH", "DELETE"))
    again = bc.push(second, first)
    assert [d.status for d in again] == [DeliveryStatus.UNCHANGED] * 2, [d.message for d in again]
    assert {d.target_id for d in again} == {d["id"] for d in drafts}
    assert sum(bc.app.count(m, r"/api/v2\.0/") for m in ("POST", "PATCH", "DELETE")) == writes


def test_same_number_from_two_vendors_gets_two_drafts(bc: Any) -> None:
    ours = bc.push(bc.document(), bc.document(supplier="Office Supplies BV", vat=None).model_copy(
        update={"id": "other-vendor", "source_id": "other"}))
    assert [d.status for d in ours] == [DeliveryStatus.DELIVERED] * 2, [d.message for d in ours]
    assert sorted(i["vendorName"] for i in bc.invoices()) == ["Brouwerij De Klok NV", "Office Supplies BV"]


def test_lost_answer_claims_the_new_draft_not_a_twins(bc: Any) -> None:
    assert bc.push(_twin(bc, "a", b"%PDF-1.7 first\n"))[0].status is DeliveryStatus.DELIVERED
    bc.app.add_fault({"action": "drop_after", "method": "POST", "path": INVOICES})
    [delivery] = bc.push(_twin(bc, "b", b"%PDF-1.7 second\n"))
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert len(bc.invoices()) == 2 and len(bc.attachments()) == 2
    [mine] = [a for a in bc.attachments() if a["parentId"] == delivery.target_id]
    assert bc.app.content.read(mine["id"]) == b"%PDF-1.7 second\n"


def test_changed_pdf_of_the_same_size_replaces_the_drafts_content(bc: Any) -> None:
    [first] = bc.push(bc.document(pdf=b"%PDF-1.7 version 1\n"))
    changed = bc.document(pdf=b"%PDF-1.7 version 2\n")
    [delivery] = bc.push(changed, previous=first)  # the ledger knows its draft
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    [invoice] = bc.invoices()
    [attachment] = bc.attachments()
    assert delivery.target_id == invoice["id"]
    assert bc.app.content.read(attachment["id"]) == b"%PDF-1.7 version 2\n"
