"""Wire details a real (or independently written) Business Central may differ on: what the client
sends must be exactly the documented form, and what it reads must tolerate documented variants."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from invoicesync import DeliveryStatus
from invoicesync.testing.blobs import blob_bytes
from invoicesync_dynamics365.client import _NextLink, parse_error

INVOICES = r"/purchaseInvoices$"


def test_attachment_content_is_sent_as_raw_octet_stream(bc: Any) -> None:
    # Not the file's own type (application/xml for UBL is documented nowhere), never JSON.
    [delivery] = bc.push(bc.document(ubl=b"<Invoice/>"))
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert bc.app.upload_content_types == ["application/octet-stream", "application/octet-stream"]


@pytest.mark.parametrize("style", ["path", "relative"])
def test_relative_next_links_are_followed(make_bc: Any, style: str) -> None:
    bc = make_bc(page_size=2, next_links=style)
    for i in range(5):
        bc.company.add_vendor(f"Filler {i}", f"FR{i:011d}")
    bc.company.add_vendor("Far Away SA", "fr 12 345 678 901")
    [delivery] = bc.push(bc.document(supplier="Far Away", vat="FR12345678901"))
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert bc.invoices()[0]["vendorName"] == "Far Away SA"
    assert bc.app.count("GET", r"/vendors$") >= 4
    assert not any(status == 404 for _, _, status in bc.app.requests)


def test_next_link_resolution() -> None:
    page = "https://bc.test/v2.0/t/production/api/v2.0/companies(c1)/vendors?$filter=x"
    context = "https://bc.test/v2.0/t/production/api/v2.0/$metadata#companies(c1)/vendors"
    absolute = "https://other.test/v2.0/t/production/api/v2.0/companies(c1)/vendors?$skiptoken=2"
    assert _NextLink(page)({"@odata.nextLink": absolute}) == (absolute, None)
    # Relative to the service root, as OData resolves against @odata.context.
    assert _NextLink(page)({"@odata.context": context, "@odata.nextLink": "companies(c1)/vendors?$skiptoken=2"}) == (
        "https://bc.test/v2.0/t/production/api/v2.0/companies(c1)/vendors?$skiptoken=2", None)
    # Continuing the page's own path, and host-relative.
    assert _NextLink(page)({"@odata.context": context, "@odata.nextLink": "vendors?$skiptoken=2"}) == (
        "https://bc.test/v2.0/t/production/api/v2.0/companies(c1)/vendors?$skiptoken=2", None)
    assert _NextLink(page)({"@odata.nextLink": "/v2.0/t/production/api/v2.0/companies(c1)/vendors?$skiptoken=2"}) == (
        "https://bc.test/v2.0/t/production/api/v2.0/companies(c1)/vendors?$skiptoken=2", None)
    assert _NextLink(page)({"value": []}) is None


def test_local_currency_goes_blank_where_its_code_is_refused(make_bc: Any) -> None:
    bc = make_bc(lcy_code_accepted=False)
    [first] = bc.push(bc.document("INV-1"))
    assert first.status is DeliveryStatus.DELIVERED, first.message
    assert bc.invoices()[0]["currencyCode"] == "EUR"
    assert bc.app.count("POST", INVOICES) == 2  # refused with "EUR", taken blank
    [second] = bc.push(bc.document("INV-2"))
    assert second.status is DeliveryStatus.DELIVERED, second.message
    assert bc.app.count("POST", INVOICES) == 3  # learnt: blank at once
    assert len(bc.invoices()) == 2


def test_configured_local_currency_is_sent_blank(make_bc: Any) -> None:
    bc = make_bc(lcy_code_accepted=False)
    bc.set(local_currency="eur")
    [delivery] = bc.push(bc.document())
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert bc.app.count("POST", INVOICES) == 1


@pytest.mark.parametrize("lcy_code_accepted", [True, False])
def test_currency_bc_lacks_fails_clearly_and_leaves_no_draft(make_bc: Any, lcy_code_accepted: bool) -> None:
    bc = make_bc(lcy_code_accepted=lcy_code_accepted)
    document = bc.document().model_copy(update={"currency": "JPY"})
    [delivery] = bc.push(document)
    assert delivery.status is DeliveryStatus.FAILED
    assert "JPY" in delivery.message and "field currency" in delivery.message
    assert bc.invoices() == []


def test_service_that_does_not_serve_content_back(bc: Any) -> None:
    document = bc.document()
    assert bc.push(document)[0].status is DeliveryStatus.DELIVERED
    bc.app.add_fault({"method": "GET", "path": r"/attachmentContent$", "status": 405,
                      "code": "BadRequest_MethodNotAllowed", "times": None})
    [again] = bc.push(document)
    assert again.status in {DeliveryStatus.DELIVERED, DeliveryStatus.UNCHANGED}, again.message
    assert len(bc.invoices()) == 1 and len(bc.attachments()) == 1
    assert bc.app.content.read(bc.attachments()[0]["id"]) == blob_bytes(bc.context().blobs, document.pdf.sha256)


def test_upper_case_guids_are_the_same_record(bc: Any) -> None:
    document = bc.document()
    [first] = bc.push(document)
    invoice = bc.invoices()[0]
    for attachment in bc.attachments():  # a service that writes GUIDs in upper case
        attachment["parentId"] = attachment["parentId"].upper()
    [again] = bc.push(document, previous=first.model_copy(update={"target_id": invoice["id"].upper()}))
    assert again.status is DeliveryStatus.UNCHANGED, again.message
    assert len(bc.invoices()) == 1 and len(bc.attachments()) == 1


def test_error_bodies_read_tolerantly() -> None:
    def error(status: int, body: Any) -> Any:
        response = httpx.Response(status, json=body) if body is not None else httpx.Response(status, text="<html/>")
        return parse_error(response)

    plain = error(400, {"error": {"code": "Application_DialogException", "message": "Nope  CorrelationId:  x."}})
    assert plain.code == "Application_DialogException" and "Nope" in str(plain)
    legacy = error(400, {"error": {"code": "BadRequest", "message": {"lang": "en-US", "value": "Bad literal"}}})
    assert "Bad literal" in str(legacy)
    assert error(502, None).status == 502
    assert type(error(404, {"error": {"code": "BadRequest_NotFound", "message": "x"}})).__name__ == "NotFoundError"


def test_authority_with_only_plain_oidc_discovery(bc: Any) -> None:
    # A stand-in Entra that serves {authority}/.well-known/openid-configuration but not msal's
    # Entra-style {authority}/v2.0/.well-known/openid-configuration.
    bc.app.add_fault({"method": "GET", "path": r"/v2\.0/\.well-known/openid-configuration$", "status": 404,
                      "times": None})
    [delivery] = bc.push(bc.document())
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert bc.app.count("GET", r"^/[^/]+/\.well-known/openid-configuration$") == 1
