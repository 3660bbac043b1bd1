"""Every file of a document into Drive, and documents deleted at the source (on_delete)."""

from __future__ import annotations

from typing import Any

from invoicesync import DeliveryStatus, FileRole

TERMS = ("terms.pdf", "application/pdf", b"%PDF terms\n")
SHEET = ("lines.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", b"PK sheet")
PHOTO = ("receipt.jpg", "image/jpeg", b"\xff\xd8\xff photo")
FOLDER = "invoicesync/Acme BV/2026/purchase/"


def test_every_attachment_lands_beside_the_pdf_once(drive: Any) -> None:
    doc = drive.document(1, attachments=[TERMS, SHEET])
    [delivery] = drive.push([doc])
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    stem = FOLDER + "2026-02-01_Supplier NV_INV-0001"
    for path in (stem + ".pdf", stem + "_terms.pdf", stem + "_lines.xlsx"):
        assert drive.app.find_path(path) is not None, path
    assert len(drive.live_files()) == 3
    assert sorted(delivery.extra["files"]) == ["attachment:lines.xlsx", "attachment:terms.pdf", "pdf"]  # no UBL
    [again] = drive.push([doc])
    assert again.status is DeliveryStatus.UNCHANGED and len(drive.live_files()) == 3


def test_an_image_only_purchase_is_delivered_not_skipped(drive: Any) -> None:
    [delivery] = drive.push([drive.document(2, with_pdf=False, attachments=[PHOTO])])
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert delivery.target_path == "Acme BV/2026/purchase/2026-03-01_Supplier NV_INV-0002.jpg"
    [photo] = drive.live_files()
    assert photo.mime_type == "image/jpeg"


def test_a_widened_files_option_uploads_only_what_is_missing(drive: Any) -> None:
    doc = drive.document(3, attachments=[TERMS])
    drive.push([doc], roles={FileRole.PDF})
    assert len(drive.live_files()) == 1
    uploads = drive.uploads()
    [second] = drive.push([doc])
    assert second.status is DeliveryStatus.DELIVERED and len(drive.live_files()) == 2
    assert drive.uploads() == uploads + 1  # the PDF was found, only the terms were sent


def _delete(drive: Any, doc: Any, **kwargs: Any) -> Any:
    [delivery] = drive.push([doc.model_copy(update={"deleted": True})], **kwargs)
    return delivery


def test_on_delete_keep_leaves_the_files(drive: Any) -> None:
    doc = drive.document(4, attachments=[TERMS])
    drive.push([doc])
    delivery = _delete(drive, doc)
    assert delivery.status is DeliveryStatus.SKIPPED and "on_delete = keep" in (delivery.message or "")
    assert len(drive.live_files()) == 2


def test_on_delete_trash_moves_every_file_to_the_trash(drive: Any) -> None:
    drive.configure(on_delete="trash")
    doc = drive.document(5, attachments=[TERMS])
    drive.push([doc])
    assert _delete(drive, doc, dry_run=True).status is DeliveryStatus.PLANNED and len(drive.live_files()) == 2
    assert _delete(drive, doc).status is DeliveryStatus.DELETED
    assert drive.live_files() == []
    assert len([f for f in drive.app.store.files.values() if f.trashed]) == 2  # restorable


def test_on_delete_move_puts_every_file_under_deleted(drive: Any) -> None:
    drive.configure(on_delete="move")
    doc = drive.document(6, attachments=[TERMS])
    [first] = drive.push([doc])
    delivery = _delete(drive, doc)
    assert delivery.status is DeliveryStatus.DELETED, delivery.message
    stem = "invoicesync/_deleted/Acme BV/2026/purchase/2026-07-01_Supplier NV_INV-0006"
    assert drive.app.find_path(stem + ".pdf") is not None and drive.app.find_path(stem + "_terms.pdf") is not None
    assert drive.app.find_path("invoicesync/" + (first.target_path or "")) is None
    assert len(drive.live_files()) == 2


def test_an_attachment_with_a_long_name_keeps_its_role_within_drives_property_limit(drive: Any) -> None:
    long = ("Algemene voorwaarden en bijlagen " * 6).strip() + ".pdf"
    doc = drive.document(7, attachments=[(long, "application/pdf", b"%PDF long")])
    [delivery] = drive.push([doc])
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    [again] = drive.push([doc])
    assert again.status is DeliveryStatus.UNCHANGED and len(drive.live_files()) == 2


def test_two_attachments_with_one_name_both_land_and_are_found_again(drive: Any) -> None:
    doc = drive.document(8, attachments=[("photo.jpg", "image/jpeg", b"\xff\xd8 front"),
                                         ("photo.jpg", "image/jpeg", b"\xff\xd8 back")])
    [first] = drive.push([doc])
    assert first.status is DeliveryStatus.DELIVERED, first.message
    names = sorted(f.name for f in drive.live_files())
    assert names == ["2026-09-01_Supplier NV_INV-0008.pdf", "2026-09-01_Supplier NV_INV-0008_photo (2).jpg",
                     "2026-09-01_Supplier NV_INV-0008_photo.jpg"]
    [again] = drive.push([doc])
    assert again.status is DeliveryStatus.UNCHANGED and len(drive.live_files()) == 3


def test_files_no_longer_asked_for_go_with_the_documents_deletion(drive: Any) -> None:
    drive.configure(on_delete="trash")
    doc = drive.document(9, attachments=[TERMS])
    drive.push([doc])
    [narrowed] = drive.push([doc], roles={FileRole.PDF})
    assert narrowed.status is DeliveryStatus.UNCHANGED and len(drive.live_files()) == 2
    assert _delete(drive, doc).status is DeliveryStatus.DELETED
    assert drive.live_files() == []
