"""Every file Billit keeps with a document becomes a FileRef targets can export: terms PDFs, .xlsx
specifications, JPEG receipt photos, and purchases whose only file is a photo."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from invoicesync import FileRole
from invoicesync.testing.blobs import blob_bytes
from invoicesync_billit.documents import media_type_of, safe_file_name
from invoicesync_billit.sandbox import BillitSandbox
from invoicesync_billit.sandbox.attachments import JPEG, XLSX

MAGIC = {"application/pdf": b"%PDF-", XLSX: b"PK\x03\x04", JPEG: b"\xff\xd8\xff", "text/xml": b"<?xml",
         "text/csv": b"date;"}


def test_the_default_seed_carries_every_kind_of_attachment() -> None:
    app = BillitSandbox()  # what `invoicesync demo` and `invoicesync sandbox billit` serve
    names = Counter(a["FileName"] for c in app.companies for o in c.orders.values() for a in o["Attachments"])
    assert names["general-terms.pdf"] and names["specification.xlsx"] and names["receipt-photo.jpg"]
    image_only = [o for c in app.companies for o in c.orders.values()
                  if "OrderPDF" not in o and [a["FileName"] for a in o["Attachments"]] == ["receipt-photo.jpg"]]
    assert image_only and all(o["OrderDirection"] == "Cost" for o in image_only)
    # The counts other tests may rely on (documents=50, companies=2, seed=1).
    assert sum(len(c.orders) for c in app.companies) == 100 and len(app.files) == 168


def test_every_attachment_is_imported_with_its_role_type_and_name(billit: Any) -> None:
    h = billit(documents=120, companies=1, seed=2)
    h.connect()
    seen: Counter[str] = Counter()
    image_only = 0
    for order in h.app.company().orders.values():
        if order["OrderType"] not in ("Invoice", "CreditNote"):
            continue
        document = h.fetch(str(order["OrderID"]))
        by_id = {f.source_id: f for f in document.files}
        for attachment in order["Attachments"]:
            ref = by_id[attachment["FileID"]]
            stored = h.app.files[attachment["FileID"]]
            expected_role = FileRole.UBL if attachment["FileName"].endswith(".xml") else FileRole.ATTACHMENT
            assert (ref.role, ref.name, ref.media_type) == (expected_role, stored.name, stored.mime)
            assert blob_bytes(h.workspace.blobs, ref.sha256).startswith(MAGIC[stored.mime])
            seen[stored.mime] += 1
        if "OrderPDF" not in order and order["Attachments"] and order["OrderDirection"] == "Cost":
            image_only += 1
            assert document.pdf is None and document.ubl is None and document.raw["pdf_missing"] is True
            assert [f.media_type for f in document.files] == [JPEG]
    assert seen[XLSX] and seen[JPEG] and seen["application/pdf"] and image_only


def test_a_vague_mime_type_is_read_from_the_file_name(billit: Any) -> None:
    h = billit(documents=40, companies=1, seed=2)
    h.connect()
    order = next(o for o in h.app.company().orders.values()
                 if o["OrderType"] == "Invoice" and any(a["FileName"].endswith(".jpg") for a in o["Attachments"]))
    photo = next(a for a in order["Attachments"] if a["FileName"].endswith(".jpg"))
    h.app.files[photo["FileID"]].mime = "application/octet-stream"
    document = h.fetch(str(order["OrderID"]))
    assert next(f for f in document.files if f.source_id == photo["FileID"]).media_type == JPEG


@pytest.mark.parametrize(("given", "name", "expected"), [
    ("application/pdf", "x.bin", "application/pdf"), ("Application/PDF; charset=binary", "x", "application/pdf"),
    ("application/octet-stream", "spec.xlsx", XLSX), (None, "photo.JPG", JPEG),
    ("", "unknown", "application/octet-stream"), (None, "invoice.xml", "text/xml"),
])
def test_media_types(given: str | None, name: str, expected: str) -> None:
    assert media_type_of(given, name) == expected


@pytest.mark.parametrize(("name", "expected"), [
    ("../../x", "x"), ("..\\..\\boot.ini", "boot.ini"), ("a\x00b\x1f.pdf", "ab.pdf"), ("  ", "F.bin"),
    ("..", "F.bin"), (None, "F.bin"), ("nul", "nul"), ("Factuur 2025.pdf", "Factuur 2025.pdf"),
])
def test_file_names_are_plain(name: str | None, expected: str) -> None:
    assert safe_file_name(name, "F") == expected


def test_a_giant_file_name_keeps_its_extension() -> None:
    name = safe_file_name("é" * 1000 + ".xlsx", "F")
    assert len(name) == 200 and name.endswith(".xlsx")
