"""Which files are attached, and under what names (BC: at most 250 characters, 350 MB a file)."""

from __future__ import annotations

from typing import Any

import pytest
from invoicesync import DeliveryStatus, FileRole
from invoicesync_dynamics365 import files
from invoicesync_dynamics365.files import MAX_FILE_NAME, attachment_name


def with_files(bc: Any, *extra: Any) -> Any:
    document = bc.document()
    return document.model_copy(update={"files": [*document.files, *extra]})


def names(bc: Any) -> list[str]:
    return sorted(a["fileName"] for a in bc.attachments())


def test_every_file_of_the_document_is_attached_not_only_pdf_and_ubl(bc: Any) -> None:
    document = with_files(bc, bc.file("INV-2026-001.xml", b"<Invoice/>", "application/xml", FileRole.UBL),
                          bc.file("delivery-note.png", b"\x89PNG...", "image/png"))
    [delivery] = bc.push(document)
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert names(bc) == ["INV-2026-001.pdf", "INV-2026-001.xml", "delivery-note.png"]
    assert set(delivery.extra["attachments"]) == set(names(bc))


def test_request_files_choose_what_this_target_holds(bc: Any) -> None:
    png = bc.file("delivery-note.png", b"\x89PNG...", "image/png")
    document = with_files(bc, bc.file("INV-2026-001.xml", b"<Invoice/>", "application/xml", FileRole.UBL), png)
    [delivery] = bc.push(document, files=[document.pdf, png])
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert names(bc) == ["INV-2026-001.pdf", "delivery-note.png"]


@pytest.mark.parametrize(("given", "media_type", "expected"), [
    ("../../x.pdf", "application/pdf", "_.._x.pdf"),
    ("nul", "application/pdf", "_nul.pdf"),
    ("scan", "application/xml", "scan.xml"),
    ("a:b?.PDF", "application/pdf", "a_b_.PDF"),
    ("INV-2026-001.pdf", "application/pdf", "INV-2026-001.pdf"),
])
def test_attachment_names_are_made_safe(given: str, media_type: str, expected: str) -> None:
    from invoicesync import FileRef

    assert attachment_name(FileRef(name=given, media_type=media_type, size=1, sha256="a" * 64)) == expected


def test_unsafe_and_overlong_names_are_attached_under_safe_names(bc: Any) -> None:
    long_name = "Rechnung " + "x" * 300 + ".pdf"
    document = with_files(bc, bc.file("../../x.pdf", b"%PDF one"), bc.file("nul", b"%PDF two"),
                          bc.file("no-extension", b"<xml/>", "application/xml"), bc.file(long_name, b"%PDF three"))
    [delivery] = bc.push(document)
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    attached = names(bc)
    assert "_.._x.pdf" in attached and "_nul.pdf" in attached and "no-extension.xml" in attached
    [long] = [n for n in attached if n.startswith("Rechnung")]
    assert len(long) <= MAX_FILE_NAME and long.endswith(".pdf")
    writes = sum(bc.app.count(m, r"/api/v2\.0/") for m in ("POST", "PATCH", "DELETE"))
    assert bc.push(document)[0].status is DeliveryStatus.UNCHANGED  # the same names are found again
    assert sum(bc.app.count(m, r"/api/v2\.0/") for m in ("POST", "PATCH", "DELETE")) == writes


def test_two_files_that_would_share_a_name_are_told_apart(bc: Any) -> None:
    document = with_files(bc, bc.file("a/b.pdf", b"%PDF one"), bc.file("a_b.pdf", b"%PDF two"))
    assert bc.push(document)[0].status is DeliveryStatus.DELIVERED
    assert names(bc) == ["INV-2026-001.pdf", "a_b (2).pdf", "a_b.pdf"]


def test_files_bc_does_not_take_are_listed_not_failed(bc: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "MAX_UPLOAD_BYTES", 100)  # BC's 350 MB, scaled down for the test
    document = with_files(bc, bc.file("empty.pdf", b""), bc.file("huge.zip", b"z" * 101, "application/zip"))
    [delivery] = bc.push(document)
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert names(bc) == ["INV-2026-001.pdf"]
    assert "not attached" in delivery.message and "empty.pdf (empty file)" in delivery.message
    assert "huge.zip" in delivery.message and "350 MB" in delivery.message
