"""Fetching one order: typed mapping, files streamed from base64 JSON, orders without a PDF,
and payloads that break Billit's Swagger types, each a clear per-document error."""

from __future__ import annotations

import logging
import tracemalloc
from decimal import Decimal
from typing import Any

import pytest
from invoicesync import Direction, DocumentError, DocumentKind, FileRole
from invoicesync.testing.blobs import blob_bytes


def _first(h: Any, **criteria: Any) -> dict[str, Any]:
    for order in sorted(h.app.company().orders.values(), key=lambda o: o["OrderID"]):
        if all(order.get(k) == v for k, v in criteria.items()):
            return order
    raise AssertionError(f"no seeded order with {criteria}")


def test_purchase_invoice_from_peppol_maps_fully(billit: Any) -> None:
    h = billit(documents=60, companies=1)
    h.connect()
    order = _first(h, OrderDirection="Cost", OrderType="Invoice", ExternalProvider="Peppol")
    document = h.fetch(str(order["OrderID"]))
    assert document.id == f"billit:books:{h.company.id}:{order['OrderID']}"
    assert document.kind is DocumentKind.INVOICE and document.direction is Direction.PURCHASE
    assert document.number == order["OrderNumber"]
    assert document.issue_date is not None and document.issue_date.isoformat() == order["OrderDate"][:10]
    assert document.amount_incl_vat == Decimal(str(order["TotalIncl"]))
    assert document.amount_excl_vat + document.amount_vat == document.amount_incl_vat
    supplier = order["Supplier"]
    assert document.counterparty.name == supplier["DisplayName"] != supplier["Name"]
    assert document.counterparty.other_names == [supplier["Name"]]  # "Telenet" is also "Telenet BV"
    assert document.counterparty.vat_number == order["Supplier"]["VATNumber"]
    assert document.counterparty.peppol_id == "0208:" + order["Supplier"]["VATNumber"][2:]
    assert document.paid is order["Paid"]
    roles = sorted(f.role for f in document.files if f.role is not FileRole.ATTACHMENT)
    assert roles == sorted([FileRole.PDF, FileRole.UBL])
    assert document.pdf is not None and document.pdf.name.endswith(".xml_1.pdf")
    assert document.ubl is not None and document.ubl.source_id == order["Attachments"][0]["FileID"]


def test_sales_credit_note(billit: Any) -> None:
    h = billit(documents=80, companies=1)
    h.connect()
    order = _first(h, OrderDirection="Income", OrderType="CreditNote")
    document = h.fetch(str(order["OrderID"]))
    assert document.kind is DocumentKind.CREDIT_NOTE and document.direction is Direction.SALES
    assert document.counterparty.name == order["Customer"]["Name"] == order["Customer"]["DisplayName"]
    assert document.counterparty.other_names == []  # one name only: nothing else to match on


def test_order_without_pdf_is_imported_and_marked(billit: Any, caplog: pytest.LogCaptureFixture) -> None:
    h = billit(documents=20, companies=1)
    h.connect()
    order = _first(h, OrderDirection="Income", OrderType="Invoice")
    h.app.drop_pdf(order["OrderID"])
    with caplog.at_level(logging.INFO):
        document = h.fetch(str(order["OrderID"]))
    assert document.pdf is None and document.raw["pdf_missing"] is True
    notes = [r for r in caplog.records if order["OrderNumber"] in r.getMessage() and "no OrderPDF" in r.getMessage()]
    # Logged for the record, but at INFO: a first sync of many drafts must not flood the terminal
    # with warnings (the document itself carries the mark, and `documents` shows "[no PDF]").
    assert [r.levelno for r in notes] == [logging.INFO]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


MALFORMED = [
    ("TotalIncl", "12,50", "TotalIncl"),
    ("TotalVAT", True, "TotalVAT"),
    ("OrderDate", "25/04/2025", "OrderDate"),
    ("LastModified", 20250425, "LastModified"),
    ("Paid", "yes", "Paid"),
    ("OrderID", "1100001x", "OrderID"),
    ("RemindersSent", 1.5, "RemindersSent"),
    ("OrderDirection", "Sideways", "OrderDirection"),
    ("OrderType", None, "OrderType"),
    ("OrderPDF", {"FileID": "not-a-uuid"}, "OrderPDF/FileID"),
    ("OrderPDF", "invoice.pdf", "OrderPDF"),
    ("Attachments", {"FileID": "x"}, "Attachments"),
    ("CounterParty", ["Brico"], "CounterParty"),
    ("Currency", 978, "Currency"),
]


@pytest.mark.parametrize(("field", "value", "expected"), MALFORMED, ids=[f"{m[0]}={m[1]!r}" for m in MALFORMED])
def test_swagger_type_violations_fail_that_document_only(billit: Any, field: str, value: Any, expected: str) -> None:
    h = billit(documents=6, companies=1)
    h.connect()
    orders = sorted(h.app.company().orders)
    bad = h.app.company().orders[orders[0]]
    h.app.edit_order(orders[0], regenerate=False, **{field: value})
    files_before = h.app.count("GET", r"^/v1/files/")
    with pytest.raises(DocumentError) as info:
        h.fetch(str(orders[0]))
    error = info.value
    assert error.field == expected
    assert bad["OrderNumber"] in str(error.document) and str(orders[0]) in str(error.document)
    assert expected in str(error) and "must be" in str(error)
    assert h.app.count("GET", r"^/v1/files/") == files_before  # nothing downloaded for a bad order
    assert h.fetch(str(orders[1])).source_id == str(orders[1])  # the others are fine


def test_bad_file_content_is_a_document_error_naming_the_file_field(billit: Any) -> None:
    h = billit(documents=6, companies=1)
    h.connect()
    order = _first(h, OrderType="Invoice")
    file_id = order["OrderPDF"]["FileID"]
    h.app.add_fault({"status": 200, "path": f"^/v1/files/{file_id}$", "times": 1,
                     "body": {"FileID": file_id, "FileName": "x.pdf", "FileContent": "%%% not base64 %%%"}})
    with pytest.raises(DocumentError) as info:
        h.fetch(str(order["OrderID"]))
    assert info.value.field == "OrderPDF/FileContent"
    assert h.fetch(str(order["OrderID"])).pdf is not None  # next time it works


def test_deleted_between_listing_and_fetch_is_a_document_error(billit: Any) -> None:
    h = billit(documents=6, companies=1)
    h.connect()
    order_id = sorted(h.app.company().orders)[0]
    h.app.delete_order(order_id)
    with pytest.raises(DocumentError, match="no longer"):
        h.fetch(str(order_id))


def test_large_file_streams_without_holding_it_in_memory(billit: Any) -> None:
    """Peak memory of a fetch does not grow with the file: 32 MiB costs what 4 MiB costs."""
    h = billit(documents=3, companies=1)
    h.connect()
    small_order, large_order = sorted(h.app.company().orders)[:2]
    h.app.add_large_file(small_order, 4 * 1024 * 1024, chunk=256 * 1024)
    h.app.add_large_file(large_order, 32 * 1024 * 1024, chunk=256 * 1024)
    ctx = h.context()
    peaks = []
    for order_id in (small_order, large_order):
        tracemalloc.start()
        try:
            document = h.fetch(str(order_id), ctx)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        big = next(f for f in document.files if f.name == "scan.bin")
        assert len(blob_bytes(h.workspace.blobs, big.sha256)) == big.size
    assert big.size == 32 * 1024 * 1024
    assert peaks[1] < peaks[0] + 2 * 1024 * 1024, peaks
