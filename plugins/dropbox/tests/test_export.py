"""Export through the real client over HTTP against the sandbox: paths, batches, exactly once."""

from __future__ import annotations

from typing import Any

import pytest
from invoicesync import DeliveryStatus, PushRequest
from invoicesync_dropbox.content_hash import content_hash

PDF = b"%PDF-1.7 invoice one\n"
UBL = b"<Invoice>one</Invoice>"


def test_a_lone_small_file_is_one_session_and_one_batch_commit_and_is_recorded(env: Any) -> None:
    [delivery] = env.push([env.document("INV-1", pdf=PDF)])
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    path = "/Invoices/Acme BV/2026/purchase/2026-01-15_Supplier NV_INV-1.pdf"
    assert delivery.target_path == path
    assert delivery.content_hash == content_hash(PDF)
    entry = env.app.namespace.get(path)
    assert delivery.target_id == entry.id and delivery.extra["rev"] == entry.rev
    assert env.stored(path) == PDF
    assert env.app.count("POST", r"upload_session/start$") == 1
    assert env.app.count("POST", r"finish_batch_v2$") == 1
    assert env.app.count("POST", r"/2/files/upload$") == 0


def test_pdf_and_ubl_are_committed_together_in_one_batch(env: Any) -> None:
    [delivery] = env.push([env.document("INV-2", pdf=PDF, ubl=UBL)])
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    base = "/Invoices/Acme BV/2026/purchase/2026-01-15_Supplier NV_INV-2"
    assert env.stored(base + ".pdf") == PDF and env.stored(base + ".xml") == UBL
    files = {f["role"]: f for f in delivery.extra["files"]}
    assert files["ubl"]["path"] == base + ".xml" and files["ubl"]["content_hash"] == content_hash(UBL)
    assert env.app.count("POST", r"upload_session/start$") == 2
    assert env.app.count("POST", r"finish_batch_v2$") == 1
    assert env.app.count("POST", r"/2/files/upload$") == 0


def test_many_small_documents_make_one_namespace_write(env: Any) -> None:
    docs = [env.document(f"INV-{i}", pdf=f"%PDF {i}".encode()) for i in range(20)]
    deliveries = env.push(docs)
    assert [d.status for d in deliveries] == [DeliveryStatus.DELIVERED] * 20
    assert env.app.count("POST", r"finish_batch_v2$") == 1
    assert len([e for e in env.app.namespace.entries.values() if e.kind == "file"]) == 20


def test_a_rerun_writes_nothing(env: Any) -> None:
    docs = [env.document("INV-3", pdf=PDF, ubl=UBL), env.document("INV-4", pdf=b"%PDF four")]
    first = env.push(docs)
    writes = env.writes()
    again = env.push([PushRequest(document=d, previous=p) for d, p in zip(docs, first, strict=True)])
    assert [d.status for d in again] == [DeliveryStatus.UNCHANGED] * 2
    assert env.writes() == writes
    assert [d.target_id for d in again] == [d.target_id for d in first]
    assert [d.extra["rev"] for d in again] == [d.extra["rev"] for d in first]


def test_crash_after_upload_before_ledger_leaves_no_duplicate(env: Any) -> None:
    doc = env.document("INV-5", pdf=PDF)
    env.push([doc])  # the deliveries are "lost": the ledger never heard of them
    writes = env.writes()
    [delivery] = env.push([doc])
    assert delivery.status is DeliveryStatus.UNCHANGED
    assert env.writes() == writes
    assert len([e for e in env.app.namespace.entries.values() if e.kind == "file"]) == 1


def test_lost_answer_after_upload_is_looked_up_not_resent(env: Any) -> None:
    env.configure(batch_commit=False)
    env.app.add_fault({"action": "drop_after", "method": "POST", "path": r"/2/files/upload$"})
    [delivery] = env.push([env.document("INV-6", pdf=PDF)])
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert env.app.count("POST", r"/2/files/upload$") == 0  # dropped requests are not logged as answered
    assert len([e for e in env.app.namespace.entries.values() if e.kind == "file"]) == 1
    assert delivery.target_id is not None


def test_lost_answer_of_a_batch_commit_is_looked_up(env: Any) -> None:
    env.app.add_fault({"action": "drop_after", "method": "POST", "path": r"finish_batch_v2$"})
    deliveries = env.push([env.document("INV-7", pdf=PDF), env.document("INV-8", pdf=b"%PDF 8")])
    assert [d.status for d in deliveries] == [DeliveryStatus.DELIVERED] * 2, [d.message for d in deliveries]
    assert len([e for e in env.app.namespace.entries.values() if e.kind == "file"]) == 2


PATH8 = "/Invoices/Acme BV/2026/purchase/2026-01-15_Supplier NV_INV-9.pdf"


def test_keep_both_puts_different_content_beside_it(env: Any) -> None:
    env.occupy(PATH8, b"someone else's file")
    [delivery] = env.push([env.document("INV-9", pdf=PDF)])
    assert delivery.status is DeliveryStatus.DELIVERED
    assert delivery.target_path == PATH8.replace(".pdf", " (2).pdf")
    assert env.stored(PATH8) == b"someone else's file"
    # and once more: the (2) copy is found, nothing is written again
    writes = env.writes()
    [again] = env.push([PushRequest(document=env.document("INV-9", pdf=PDF), previous=delivery)])
    assert again.status is DeliveryStatus.UNCHANGED and env.writes() == writes


def test_overwrite_replaces_exactly_the_revision_seen(env: Any) -> None:
    env.configure(on_change="overwrite")
    [first] = env.push([env.document("INV-9", pdf=b"%PDF old version")])
    old = env.app.namespace.get(PATH8)
    old_id, old_rev = old.id, old.rev
    [delivery] = env.push([PushRequest(document=env.document("INV-9", pdf=PDF), previous=first)])
    assert delivery.status is DeliveryStatus.DELIVERED and delivery.target_path == PATH8
    assert env.stored(PATH8) == PDF
    assert delivery.target_id == old_id and delivery.extra["rev"] != old_rev
    assert env.app.count("POST", r"finish_batch_v2$") == 2 and len(env.files()) == 1


def test_overwrite_never_replaces_a_file_someone_changed_since(env: Any) -> None:
    env.configure(on_change="overwrite")
    [first] = env.push([env.document("INV-9", pdf=b"%PDF old version")])
    env.occupy(PATH8, b"edited by a person", mode={".tag": "overwrite"})
    [delivery] = env.push([PushRequest(document=env.document("INV-9", pdf=PDF), previous=first)])
    assert delivery.status is DeliveryStatus.DELIVERED
    assert delivery.target_path == PATH8.replace(".pdf", " (2).pdf")
    assert env.stored(PATH8) == b"edited by a person"


def test_skip_leaves_the_earlier_version_alone_and_remembers_it(env: Any) -> None:
    env.configure(on_change="skip")
    [first] = env.push([env.document("INV-9", pdf=b"%PDF old version")])
    [delivery] = env.push([PushRequest(document=env.document("INV-9", pdf=PDF), previous=first)])
    assert delivery.status is DeliveryStatus.SKIPPED and "on_change=skip" in (delivery.message or "")
    assert env.stored(PATH8) == b"%PDF old version"
    writes = env.writes()
    # A later version is still measured against that same file: skipped again, nothing beside it.
    [later] = env.push([PushRequest(document=env.document("INV-9", pdf=b"%PDF third"), previous=delivery)])
    assert later.status is DeliveryStatus.SKIPPED and env.writes() == writes and len(env.files()) == 1


@pytest.mark.parametrize("policy", ["keep_both", "overwrite", "skip"])
def test_someone_elses_file_at_the_path_is_kept_whatever_the_policy(env: Any, policy: str) -> None:
    env.configure(on_change=policy)
    env.occupy(PATH8, b"someone else's file")
    [delivery] = env.push([env.document("INV-9", pdf=PDF)])
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert delivery.target_path == PATH8.replace(".pdf", " (2).pdf")
    assert env.stored(PATH8) == b"someone else's file"


def test_a_changed_document_updates_its_own_file(env: Any) -> None:
    env.configure(on_change="overwrite")
    [first] = env.push([env.document("INV-10", pdf=PDF)])
    [second] = env.push([PushRequest(document=env.document("INV-10", pdf=b"%PDF corrected"), previous=first)])
    assert second.status is DeliveryStatus.DELIVERED
    assert second.target_path == first.target_path and second.target_id == first.target_id
    assert env.stored(first.target_path) == b"%PDF corrected"


def test_a_failing_document_does_not_stop_the_others(env: Any) -> None:
    env.configure(batch_commit=False)
    env.app.add_fault({"method": "POST", "path": r"/2/files/upload$", "status": 409, "code": "path/disallowed_name",
                       "after": 1, "times": 1})
    documents = [env.document(f"INV-2{i}", pdf=f"%PDF {i}".encode()) for i in range(3)]
    deliveries = env.push(documents)
    # The uploads run side by side: which one is the second request (the refused one) varies.
    failed = [(doc, d) for doc, d in zip(documents, deliveries, strict=True) if d.status is DeliveryStatus.FAILED]
    assert len(failed) == 1 and sum(d.status is DeliveryStatus.DELIVERED for d in deliveries) == 2
    [(document, delivery)] = failed
    assert "does not allow this file or folder name" in (delivery.message or "")
    assert f"{document.number}.pdf" in (delivery.message or "")


def test_out_of_space_is_a_clear_per_document_failure(make_env: Any) -> None:
    env = make_env(quota_bytes=1000)
    deliveries = env.push([env.document("SMALL", pdf=b"%PDF small"), env.document("BIG", pdf=b"x" * 5000)])
    assert deliveries[0].status is DeliveryStatus.DELIVERED
    assert deliveries[1].status is DeliveryStatus.FAILED
    assert "out of space" in (deliveries[1].message or "")


def test_document_without_files_is_skipped(env: Any) -> None:
    [delivery] = env.push([env.document("EMPTY")])
    assert delivery.status is DeliveryStatus.SKIPPED and env.writes() == 0


def test_dry_run_plans_paths_and_sends_nothing(env: Any) -> None:
    [delivery] = env.push([env.document("INV-11", pdf=PDF, ubl=UBL)], dry_run=True)
    assert delivery.status is DeliveryStatus.PLANNED
    assert delivery.target_path == "/Invoices/Acme BV/2026/purchase/2026-01-15_Supplier NV_INV-11.pdf"
    assert "INV-11.xml" in (delivery.message or "")
    assert env.app.requests == []


def test_existing_folders_keep_their_case_and_lookups_ignore_case(env: Any) -> None:
    env.occupy("/INVOICES/acme bv/readme.txt", b"hello")
    [delivery] = env.push([env.document("INV-12", pdf=PDF)])
    assert delivery.target_path == "/INVOICES/acme bv/2026/purchase/2026-01-15_Supplier NV_INV-12.pdf"
    writes = env.writes()
    [again] = env.push([env.document("INV-12", pdf=PDF)])
    assert again.status is DeliveryStatus.UNCHANGED and env.writes() == writes
