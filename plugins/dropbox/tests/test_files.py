"""Every file of a document, and documents deleted at the source (on_delete)."""

from __future__ import annotations

from typing import Any

import pytest
from invoicesync import DeliveryStatus, PushRequest

PDF = b"%PDF-1.7 invoice\n"
TERMS = ("terms.pdf", "application/pdf", b"%PDF terms\n")
SHEET = ("lines.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", b"PK sheet")
PHOTO = ("receipt.jpg", "image/jpeg", b"\xff\xd8\xff photo")
BASE = "/Invoices/Acme BV/2026/purchase/2026-01-15_Supplier NV_"


def test_every_attachment_lands_beside_the_pdf_once(env: Any) -> None:
    doc = env.document("INV-1", pdf=PDF, attachments=[TERMS, SHEET])
    [delivery] = env.push([doc])
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert env.stored(BASE + "INV-1.pdf") == PDF
    assert env.stored(BASE + "INV-1_terms.pdf") == TERMS[2] and env.stored(BASE + "INV-1_lines.xlsx") == SHEET[2]
    assert len(env.files()) == 3
    assert [f["role"] for f in delivery.extra["files"]] == ["pdf", "attachment", "attachment"]  # no UBL
    [again] = env.push([PushRequest(document=doc, previous=delivery)])
    assert again.status is DeliveryStatus.UNCHANGED and len(env.files()) == 3


def test_an_image_only_purchase_is_delivered_not_skipped(env: Any) -> None:
    [delivery] = env.push([env.document("R-7", attachments=[PHOTO])])
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert delivery.target_path == BASE + "R-7.jpg" and env.stored(BASE + "R-7.jpg") == PHOTO[2]


def test_a_widened_files_option_uploads_only_what_is_missing(env: Any) -> None:
    doc = env.document("INV-2", pdf=PDF, attachments=[TERMS])
    [first] = env.push([PushRequest(document=doc, files=[doc.files[0]])])
    assert [e.display for e in env.files()] == [BASE + "INV-2.pdf"]
    rev = env.app.namespace.get(BASE + "INV-2.pdf").rev
    [second] = env.push([PushRequest(document=doc, previous=first)])
    assert second.status is DeliveryStatus.DELIVERED and env.stored(BASE + "INV-2_terms.pdf") == TERMS[2]
    assert env.app.namespace.get(BASE + "INV-2.pdf").rev == rev  # the PDF was not written again
    assert env.app.count("POST", r"upload_session/start$") == 2  # nor even sent again


def _deleted(env: Any, first: Any, doc: Any, **context: Any) -> Any:
    gone = doc.model_copy(update={"deleted": True})
    [delivery] = env.push([PushRequest(document=gone, previous=first)], **context)
    return delivery


def test_on_delete_keep_leaves_the_files(env: Any) -> None:
    doc = env.document("INV-3", pdf=PDF, attachments=[TERMS])
    [first] = env.push([doc])
    delivery = _deleted(env, first, doc)
    assert delivery.status is DeliveryStatus.SKIPPED and "on_delete = keep" in (delivery.message or "")
    assert len(env.files()) == 2


def test_on_delete_move_puts_every_file_under_deleted(env: Any) -> None:
    env.configure(on_delete="move")
    doc = env.document("INV-4", pdf=PDF, attachments=[TERMS])
    [first] = env.push([doc])
    planned = _deleted(env, first, doc, dry_run=True)
    assert planned.status is DeliveryStatus.PLANNED and "move to /_deleted" in (planned.message or "")
    delivery = _deleted(env, first, doc)
    assert delivery.status is DeliveryStatus.DELETED, delivery.message
    assert sorted(e.display for e in env.files()) == ["/_deleted" + BASE + "INV-4.pdf",
                                                      "/_deleted" + BASE + "INV-4_terms.pdf"]
    assert delivery.target_path == "/_deleted" + BASE + "INV-4.pdf"


def test_on_delete_trash_deletes_only_the_revision_we_wrote(env: Any) -> None:
    env.configure(on_delete="trash")
    doc = env.document("INV-5", pdf=PDF, attachments=[TERMS])
    [first] = env.push([doc])
    # Someone edits the terms in Dropbox after we delivered them: that file is theirs now.
    env.occupy(BASE + "INV-5_terms.pdf", b"%PDF annotated terms", {".tag": "overwrite"})
    delivery = _deleted(env, first, doc)
    assert delivery.status is DeliveryStatus.DELETED, delivery.message
    assert [e.display for e in env.files()] == [BASE + "INV-5_terms.pdf"]
    assert "kept" in (delivery.message or "")
    assert env.app.namespace.deleted  # restorable, as Dropbox keeps deleted files
    # A file already gone is no failure: deleting again settles.
    assert _deleted(env, first, doc).status is DeliveryStatus.DELETED


@pytest.mark.parametrize("policy", ["move", "trash"])
def test_a_deletion_refused_by_dropbox_fails_the_document(env: Any, policy: str) -> None:
    env.configure(on_delete=policy)
    doc = env.document("INV-6", pdf=PDF)
    [first] = env.push([doc])
    env.app.add_fault({"method": "POST", "path": r"/2/files/(move|delete)_v2$", "status": 409,
                       "code": "path_write/no_write_permission", "times": None})
    assert _deleted(env, first, doc).status is DeliveryStatus.FAILED
    assert len(env.files()) == 1


def test_awkward_names_land_in_the_strict_sandbox(env: Any) -> None:
    doc = env.document("INV-7", pdf=PDF, counterparty='Müller: "Bau"? GmbH. ',
                       attachments=[("plan <v2>|final*.pdf", "application/pdf", b"%PDF plan"),
                                    ("\U0001F600" * 120 + ".jpg", "image/jpeg", b"\xff\xd8 long")])
    [delivery] = env.push([doc])
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert len(env.files()) == 3


def test_two_attachments_with_one_name_both_land_and_are_found_again(env: Any) -> None:
    doc = env.document("INV-8", pdf=PDF, attachments=[("photo.jpg", "image/jpeg", b"\xff\xd8 front"),
                                                      ("photo.jpg", "image/jpeg", b"\xff\xd8 back")])
    [first] = env.push([doc])
    assert env.stored(BASE + "INV-8_photo.jpg") == b"\xff\xd8 front"
    assert env.stored(BASE + "INV-8_photo (2).jpg") == b"\xff\xd8 back"
    [again] = env.push([PushRequest(document=doc, previous=first)])
    assert again.status is DeliveryStatus.UNCHANGED and len(env.files()) == 3


def test_files_no_longer_asked_for_go_with_the_documents_deletion(env: Any) -> None:
    env.configure(on_delete="move")
    doc = env.document("INV-9", pdf=PDF, attachments=[TERMS])
    [first] = env.push([doc])
    [narrowed] = env.push([PushRequest(document=doc, previous=first, files=[doc.files[0]])])
    assert narrowed.status is DeliveryStatus.UNCHANGED and len(env.files()) == 2
    assert _deleted(env, narrowed, doc).status is DeliveryStatus.DELETED
    assert sorted(e.display for e in env.files()) == ["/_deleted" + BASE + "INV-9.pdf",
                                                      "/_deleted" + BASE + "INV-9_terms.pdf"]
