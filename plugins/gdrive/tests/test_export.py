"""Export through the real client over loopback HTTP: folders, multipart uploads, exactly once."""

from __future__ import annotations

import hashlib
import threading
from typing import Any

from invoicesync import DeliveryStatus
from invoicesync.testing.blobs import forget
from invoicesync_gdrive.sandbox.store import FOLDER_MIME
from invoicesync_gdrive.upload import APP_DOCUMENT, APP_ROLE, APP_SHA256


def test_multipart_upload_places_pdf_and_ubl_with_app_properties(drive: Any) -> None:
    doc = drive.document(1, b"%PDF-1.4 hello", ubl=b"<Invoice/>")
    [delivery] = drive.push([doc])
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert delivery.target_path == "Acme BV/2026/purchase/2026-02-01_Supplier NV_INV-0001.pdf"
    pdf = drive.app.find_path("invoicesync/" + delivery.target_path)
    ubl = drive.app.find_path("invoicesync/Acme BV/2026/purchase/2026-02-01_Supplier NV_INV-0001.xml")
    assert pdf is not None and ubl is not None
    assert pdf.id == delivery.target_id and delivery.extra["files"]["ubl"]["id"] == ubl.id
    assert pdf.md5 == hashlib.md5(b"%PDF-1.4 hello").hexdigest() and pdf.mime_type == "application/pdf"
    assert pdf.app_properties == {APP_DOCUMENT: doc.id, APP_ROLE: "pdf", APP_SHA256: doc.pdf.sha256}
    assert ubl.app_properties[APP_ROLE] == "ubl" and ubl.parents == pdf.parents
    assert drive.app.count("POST", r"^/upload/drive/v3/files$") == 2  # one request per file: multipart


def test_rerun_writes_nothing(drive: Any) -> None:
    docs = [drive.document(n, ubl=b"<x/>") for n in range(3)]
    assert {d.status for d in drive.push(docs)} == {DeliveryStatus.DELIVERED}
    writes, folders = drive.uploads(), drive.app.count("POST", r"^/drive/v3/files$")
    again = drive.push(docs)
    assert {d.status for d in again} == {DeliveryStatus.UNCHANGED}
    assert drive.uploads() == writes and drive.app.count("POST", r"^/drive/v3/files$") == folders


def test_crash_between_upload_and_ledger_leaves_no_duplicate(drive: Any) -> None:
    doc = drive.document(7)
    [first] = drive.push([doc], record=False)  # the "process died" before the ledger write
    assert first.status is DeliveryStatus.DELIVERED
    [second] = drive.push([doc])  # no ledger record: it must look the file up by appProperties
    assert second.status is DeliveryStatus.UNCHANGED and second.target_id == first.target_id
    assert len(drive.files_named(first.target_path.rsplit("/", 1)[1])) == 1


def test_changed_document_updates_content_in_place(drive: Any) -> None:
    [first] = drive.push([drive.document(3, b"%PDF version one")])
    [second] = drive.push([drive.document(3, b"%PDF version two, longer")])
    assert second.status is DeliveryStatus.DELIVERED and second.target_id == first.target_id
    [file] = drive.files_named(first.target_path.rsplit("/", 1)[1])
    assert file.md5 == hashlib.md5(b"%PDF version two, longer").hexdigest() and file.version > 1
    assert drive.app.count("PATCH", r"^/upload/drive/v3/files/") == 1


def test_renamed_document_moves_its_file_and_keeps_the_id(drive: Any) -> None:
    [first] = drive.push([drive.document(4, counterparty="Old Name")])
    [second] = drive.push([drive.document(4, counterparty="New Name")])
    assert second.target_id == first.target_id and "New Name" in second.target_path
    assert drive.app.find_path("invoicesync/" + second.target_path).id == first.target_id
    assert drive.app.find_path("invoicesync/" + first.target_path) is None


def test_dry_run_plans_and_writes_nothing(drive: Any) -> None:
    [planned] = drive.push([drive.document(1)], dry_run=True)
    assert planned.status is DeliveryStatus.PLANNED and planned.target_path.endswith("INV-0001.pdf")
    assert drive.app.requests == []


def test_concurrent_pushes_never_duplicate_folders(drive: Any) -> None:
    docs = [drive.document(n * 12) for n in range(16)]  # same month → the same folder path for all
    errors: list[BaseException] = []

    def push(batch: list[Any]) -> None:
        try:
            results = drive.push(batch, record=False)
            assert all(r.status is DeliveryStatus.DELIVERED for r in results), [r.message for r in results]
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=push, args=(docs[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    names = drive.app.folder_names()
    assert len(names) == len(set(names)) == 4  # invoicesync / Acme BV / 2026 / purchase
    assert drive.app.count("POST", r"^/drive/v3/files$") == 4


def test_deleted_cached_folder_is_found_again(drive: Any) -> None:
    [_first] = drive.push([drive.document(1)])
    folder = drive.app.find_path("invoicesync/Acme BV/2026/purchase")
    with drive.app.store.lock:
        del drive.app.store.files[folder.id]  # someone deleted it for good; our cache still names it
    [second] = drive.push([drive.document(2)])
    assert second.status is DeliveryStatus.DELIVERED, second.message
    assert drive.app.find_path("invoicesync/" + second.target_path) is not None


def test_lost_answer_to_a_create_does_not_duplicate(drive: Any) -> None:
    drive.app.add_fault({"action": "drop_after", "method": "POST", "path": r"^/upload/drive/v3/files$"})
    [delivery] = drive.push([drive.document(5)])
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert len(drive.files_named(delivery.target_path.rsplit("/", 1)[1])) == 1
    # The one create (answer dropped, so not in the log) was found by lookup, never sent again.
    assert drive.app.count("POST", r"^/upload/drive/v3/files$") == 0


def test_one_bad_document_does_not_stop_the_others(drive: Any) -> None:
    good, bad = drive.document(1), drive.document(2, b"%PDF only-here")
    forget(drive.workspace.blobs, bad.pdf.sha256)  # its content is missing from the store
    results = {d.document_id: d for d in drive.push([bad, good])}
    assert results[good.id].status is DeliveryStatus.DELIVERED
    assert results[bad.id].status is DeliveryStatus.FAILED and "missing" in (results[bad.id].message or "")


def test_folders_are_folders(drive: Any) -> None:
    drive.push([drive.document(1)])
    folder = drive.app.find_path("invoicesync/Acme BV")
    assert folder.mime_type == FOLDER_MIME and folder.size is None
