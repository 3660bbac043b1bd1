"""Two documents that render to one name: both land, apart (`` (2)``), and stay where they landed."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from invoicesync import DeliveryStatus
from invoicesync_gdrive.names import is_variant

FOLDER = "invoicesync/Acme BV/2026/purchase/"
NAME = "2026-02-01_Supplier NV_SAME-1"


def twins(drive: Any, *, ubl: bool = True) -> list[Any]:
    """Documents 1 and 13: same month, number and counterparty, so one rendered name; other bytes."""
    return [drive.document(n, f"%PDF twin {n}".encode(), ubl=f"<Invoice n='{n}'/>".encode() if ubl else None,
                           number="SAME-1") for n in (1, 13)]


def pdf_names(drive: Any) -> list[str]:
    with drive.app.store.lock:
        return sorted(f.name for f in drive.app.store.files.values() if f.mime_type == "application/pdf")


def test_second_document_with_the_same_name_gets_a_suffix_and_its_ubl_follows(drive: Any) -> None:
    first, second = drive.push(twins(drive))
    assert first.status is second.status is DeliveryStatus.DELIVERED, (first.message, second.message)
    assert first.target_path == f"Acme BV/2026/purchase/{NAME}.pdf"
    assert second.target_path == f"Acme BV/2026/purchase/{NAME} (2).pdf"
    assert second.extra["files"]["ubl"]["name"] == f"{NAME} (2).xml"
    pdf, ubl = drive.app.find_path(FOLDER + f"{NAME} (2).pdf"), drive.app.find_path(FOLDER + f"{NAME} (2).xml")
    assert pdf.id == second.target_id and ubl.md5 is not None and ubl.parents == pdf.parents
    assert drive.app.find_path(FOLDER + f"{NAME}.xml").id == first.extra["files"]["ubl"]["id"]


@pytest.mark.parametrize("ledger", ["kept", "lost"])
def test_rerun_finds_each_twin_under_its_own_name_and_writes_nothing(drive: Any, ledger: str) -> None:
    docs = twins(drive)
    drive.push(docs)
    writes, names = drive.uploads(), pdf_names(drive)
    again = drive.push(list(reversed(docs)), previous=ledger == "kept")  # order must not matter either
    assert {d.status for d in again} == {DeliveryStatus.UNCHANGED}, [d.message for d in again]
    assert drive.uploads() == writes and pdf_names(drive) == names == [f"{NAME} (2).pdf", f"{NAME}.pdf"]


def test_changed_twin_keeps_its_suffixed_name(drive: Any) -> None:
    docs = twins(drive, ubl=False)
    _, second = drive.push(docs)
    changed = drive.document(13, b"%PDF twin 13, corrected", number="SAME-1")
    [again] = drive.push([changed])
    assert again.status is DeliveryStatus.DELIVERED and again.target_id == second.target_id
    assert again.target_path == second.target_path and pdf_names(drive) == [f"{NAME} (2).pdf", f"{NAME}.pdf"]


def test_a_name_held_by_a_file_we_did_not_write_is_left_alone(drive: Any) -> None:
    [_other] = drive.push([drive.document(2)])  # makes the folder chain
    folder = drive.app.find_path(FOLDER.rstrip("/"))
    with drive.app.store.lock:
        foreign = drive.app.store.create({"name": f"{NAME}.pdf", "parents": [folder.id]}, None, "application/pdf",
                                         all_drives=True)
    [delivery] = drive.push([twins(drive)[0]])
    assert delivery.target_path.endswith(f"{NAME} (2).pdf") and delivery.target_id != foreign.id
    assert foreign.version == 1  # never overwritten


def test_threads_pushing_twins_at_once_never_pick_the_same_name(drive: Any) -> None:
    docs = [drive.document(1 + 12 * k, f"%PDF twin {k}".encode(), number="SAME-1") for k in range(5)]
    drive.push(docs[:1])  # the folder chain exists: the threads race on the file name alone
    # Slow creates: without the name lock every thread would pick " (2)" before any create lands.
    drive.app.add_fault({"action": "delay", "seconds": 0.1, "method": "POST", "path": r"^/upload/", "times": None})
    errors: list[BaseException] = []

    def push(doc: Any) -> None:
        try:
            [delivery] = drive.push([doc])
            assert delivery.status in (DeliveryStatus.DELIVERED, DeliveryStatus.UNCHANGED), delivery.message
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=push, args=(doc,)) for doc in docs[1:]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert pdf_names(drive) == sorted([f"{NAME}.pdf"] + [f"{NAME} ({n}).pdf" for n in range(2, 6)])


@pytest.mark.parametrize(("name", "planned", "expected"), [
    ("a.pdf", "a.pdf", True),
    ("a (2).pdf", "a.pdf", True),
    ("a (17).pdf", "a.pdf", True),
    ("a (1).pdf", "a.pdf", False),  # never given out: the first copy has no suffix
    ("a (2).xml", "a.pdf", False),
    ("a (x).pdf", "a.pdf", False),
    ("b (2).pdf", "a.pdf", False),
    ("a.b (3).c", "a.b.c", True),
    ("noext (2)", "noext", True),
    ("(2) (2).pdf", "(2).pdf", True),
])
def test_is_variant(name: str, planned: str, expected: bool) -> None:
    assert is_variant(name, planned) is expected

