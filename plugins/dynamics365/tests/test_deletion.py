"""Documents deleted at the source (hook API 2): the unposted, untouched draft goes; others are kept."""

from __future__ import annotations

from typing import Any

import pytest
from invoicesync import DeliveryStatus
from invoicesync_dynamics365.sandbox._store import new_etag


def exported(bc: Any) -> tuple[Any, Any]:
    document = bc.document()
    [delivery] = bc.push(document)
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    return document.model_copy(update={"deleted": True}), delivery


def test_unchanged_draft_is_deleted_with_its_attachments(bc: Any) -> None:
    deleted, delivery = exported(bc)
    [outcome] = bc.push(deleted, previous=delivery)
    assert outcome.status is DeliveryStatus.DELETED, outcome.message
    assert bc.invoices() == [] and bc.attachments() == []
    assert bc.company.numbers["purchaseInvoices"] == 108010  # nothing made on the way


# BC's code for a stale etag is documented (Request_EntityChanged), its status is not: 409 or 412.
@pytest.mark.parametrize("status", [412, 409])
def test_the_delete_carries_the_exported_etag(bc: Any, status: int) -> None:
    deleted, delivery = exported(bc)
    etag = bc.invoices()[0]["@odata.etag"]
    assert delivery.extra["etag"] == etag
    bc.app.add_fault({"method": "DELETE", "path": r"/purchaseInvoices\(", "status": status,
                      "code": "Request_EntityChanged"})  # someone edits it between our look and our delete
    [outcome] = bc.push(deleted, previous=delivery)
    assert outcome.status is DeliveryStatus.SKIPPED
    assert outcome.message.endswith("edited in BC since export; not deleted")
    assert len(bc.invoices()) == 1


def test_posted_invoice_is_reported_not_deleted(bc: Any) -> None:
    deleted, delivery = exported(bc)
    bc.invoices()[0]["status"] = "Open"
    [outcome] = bc.push(deleted, previous=delivery)
    assert outcome.status is DeliveryStatus.SKIPPED and "posted in BC; not deleted" in outcome.message
    assert len(bc.invoices()) == 1 and bc.app.count("DELETE", r"/api/v2\.0/") == 0


def test_draft_edited_in_bc_is_reported_not_deleted(bc: Any) -> None:
    deleted, delivery = exported(bc)
    bc.invoices()[0].update({"dueDate": "2026-05-01", "@odata.etag": new_etag()})
    [outcome] = bc.push(deleted, previous=delivery)
    assert outcome.status is DeliveryStatus.SKIPPED
    assert "edited in BC since export; not deleted" in outcome.message
    assert len(bc.invoices()) == 1 and bc.app.count("DELETE", r"/api/v2\.0/") == 0


def test_draft_with_a_file_a_person_added_is_not_deleted(bc: Any) -> None:
    deleted, delivery = exported(bc)
    draft = bc.invoices()[0]
    bc.company.attachments["documentAttachments"]["added-by-hand"] = {
        "id": "added-by-hand", "parentId": draft["id"], "fileName": "approval.msg", "byteSize": 10,
        "parentType": "Purchase Invoice", "@odata.etag": new_etag()}
    [outcome] = bc.push(deleted, previous=delivery)
    assert outcome.status is DeliveryStatus.SKIPPED and "edited in BC" in outcome.message
    assert len(bc.invoices()) == 1


def test_on_delete_keep_leaves_the_draft(bc: Any) -> None:
    deleted, delivery = exported(bc)
    bc.set(on_delete="keep")
    [outcome] = bc.push(deleted, previous=delivery)
    assert outcome.status is DeliveryStatus.SKIPPED and "on_delete = keep" in outcome.message
    assert len(bc.invoices()) == 1 and bc.app.count("DELETE", r"/api/v2\.0/") == 0


def test_never_exported_document_needs_nothing(bc: Any) -> None:
    [outcome] = bc.push(bc.document().model_copy(update={"deleted": True}))
    assert outcome.status is DeliveryStatus.DELETED
    assert bc.app.requests == []


def test_dry_run_plans_the_delete(bc: Any) -> None:
    deleted, delivery = exported(bc)
    [outcome] = bc.push(deleted, previous=delivery, dry_run=True)
    assert outcome.status is DeliveryStatus.PLANNED and len(bc.invoices()) == 1


def test_the_draft_of_a_document_whose_attachment_kept_failing_is_removed(bc: Any) -> None:
    bc.app.add_fault({"method": "POST", "path": r"/documentAttachments$", "status": 400, "times": None})
    [failed] = bc.push(bc.document())
    assert failed.status is DeliveryStatus.FAILED and len(bc.invoices()) == 1
    [outcome] = bc.push(bc.document().model_copy(update={"deleted": True}), previous=failed)
    assert outcome.status is DeliveryStatus.DELETED, outcome.message
    assert bc.invoices() == []


def test_an_empty_draft_a_kill_left_is_removed_when_the_document_is_deleted(
        bc: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from invoicesync_dynamics365.client import BusinessCentral

    create = BusinessCentral.create

    def create_then_die(self: BusinessCentral, company: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        create(self, company, path, body)
        raise SystemExit("killed after the draft was made")

    monkeypatch.setattr(BusinessCentral, "create", create_then_die)
    with pytest.raises(SystemExit):
        bc.push(bc.document())
    monkeypatch.undo()
    assert len(bc.invoices()) == 1
    [outcome] = bc.push(bc.document().model_copy(update={"deleted": True}))
    assert outcome.status is DeliveryStatus.DELETED, outcome.message
    assert bc.invoices() == []


def test_a_draft_without_a_kept_etag_that_holds_files_is_not_deleted(bc: Any) -> None:
    deleted, delivery = exported(bc)
    old = delivery.model_copy(update={"extra": {k: v for k, v in delivery.extra.items() if k != "etag"}})
    [outcome] = bc.push(deleted, previous=old)
    assert outcome.status is DeliveryStatus.SKIPPED and len(bc.invoices()) == 1
