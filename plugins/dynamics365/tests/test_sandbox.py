"""The emulator's own protocol: OData queries, paging, etags, two-step upload, errors."""

from __future__ import annotations

import ssl
from typing import Any

import httpx
import pytest
from invoicesync_dynamics365.client import odata_string
from invoicesync_dynamics365.sandbox import DEMO_SECRET, BusinessCentralSandbox
from invoicesync_dynamics365.sandbox._odata import FilterError, compile_filter
from invoicesync_dynamics365.settings import Dynamics365Settings
from invoicesync_dynamics365.vendors import normalise_vat, same_vat


def test_odata_filters() -> None:
    row = {"displayName": "O'Brien & Co", "number": "V1", "balance": 5, "id": "AB5D7C1E-0000-0000-0000-000000000001"}
    assert compile_filter(f"displayName eq {odata_string(chr(39).join(['O', 'Brien & Co']))}")(row)
    assert compile_filter("number eq 'V1' and balance gt 4")(row)
    assert not compile_filter("number eq 'V2' or (balance lt 5)")(row)
    assert compile_filter("contains(displayName,'Brien') and not startswith(number,'X')")(row)
    assert compile_filter("id eq ab5d7c1e-0000-0000-0000-000000000001")(row)
    with pytest.raises(FilterError):
        compile_filter("number eq")


def test_vat_normalisation() -> None:
    assert normalise_vat("BE0123.456.789") == normalise_vat("be 0123 456 789") == "BE0123456789"
    assert same_vat("BE0123.456.789", "0123456789")
    assert not same_vat("BE0123456789", "NL0123456789")


@pytest.fixture
def api(bc: Any) -> Any:
    settings = Dynamics365Settings.model_validate(bc.account.settings)
    from invoicesync_dynamics365.auth import MsalAuthenticator

    authenticator = MsalAuthenticator(settings, DEMO_SECRET)
    token = authenticator.token()
    authenticator.close()
    client = httpx.Client(base_url=f"{settings.api_base}/companies({bc.company.id})/",
                          headers={"Authorization": f"Bearer {token}"},
                          verify=ssl.create_default_context(cafile=str(bc.running.ca_file)))
    yield client
    client.close()


def test_paging_top_skip_and_next_link(make_bc: Any) -> None:
    bc = make_bc(page_size=2)
    for i in range(5):
        bc.company.add_vendor(f"Vendor {i}")
    settings = Dynamics365Settings.model_validate(bc.account.settings)
    from invoicesync_dynamics365.client import BusinessCentral

    ctx = bc.context()
    from invoicesync_dynamics365.auth import MsalAuthenticator

    authenticator = MsalAuthenticator(settings, DEMO_SECRET)
    client = BusinessCentral(ctx.http(settings.api_base, auth=authenticator), authenticator)
    assert len(client.vendors(bc.company.id)) == 7
    assert [v["displayName"] for v in client.vendors(bc.company.id, top=2)] == ["Brouwerij De Klok NV",
                                                                                  "Office Supplies BV"]
    assert [v["displayName"] for v in client.vendors(bc.company.id, "startswith(displayName,'Vendor')")] == [
        f"Vendor {i}" for i in range(5)]
    client.close()
    ctx.close()


def test_two_step_upload_with_etags(bc: Any, api: httpx.Client) -> None:
    vendor = next(iter(bc.company.vendors.values()))
    invoice = api.post("purchaseInvoices", json={"vendorNumber": vendor["number"], "vendorInvoiceNumber": "X1"})
    assert invoice.status_code == 201 and invoice.json()["status"] == "Draft"
    meta = api.post("documentAttachments", json={"parentId": invoice.json()["id"], "parentType": "Purchase Invoice",
                                                 "fileName": "x.pdf"})
    assert meta.status_code == 201 and meta.json()["byteSize"] == 0
    url = f"documentAttachments({meta.json()['id']})/attachmentContent"
    assert api.patch(url, content=b"%PDF").json()["error"]["code"] == "BadRequest_InvalidToken"
    stale = api.patch(url, content=b"%PDF", headers={"If-Match": 'W/"JzE5OzE7MDA7Jw=="'})
    assert stale.status_code == 412 and stale.json()["error"]["code"] == "Request_EntityChanged"
    assert api.patch(url, content=b"%PDF-1", headers={"If-Match": "*"}).status_code == 204
    assert api.get(url).content == b"%PDF-1"
    assert api.get(f"documentAttachments({meta.json()['id']})").json()["byteSize"] == 6
    listed = api.get(f"purchaseInvoices({invoice.json()['id']})/documentAttachments").json()["value"]
    assert [a["fileName"] for a in listed] == ["x.pdf"]
    # Deleting the draft needs its etag (or *), and takes its attachments along.
    etag = api.get(f"purchaseInvoices({invoice.json()['id']})").json()["@odata.etag"]
    assert api.delete(f"purchaseInvoices({invoice.json()['id']})", headers={"If-Match": etag}).status_code == 204
    assert bc.attachments() == []


def test_documented_errors(bc: Any, api: httpx.Client) -> None:
    vendor = next(iter(bc.company.vendors.values()))
    too_long = api.post("purchaseInvoices", json={"vendorNumber": vendor["number"], "vendorInvoiceNumber": "9" * 36})
    assert too_long.status_code == 400 and too_long.json()["error"]["code"] == "Application_StringExceededLength"
    unknown = api.post("purchaseInvoices", json={"vendorNumber": vendor["number"], "vendorInvoiceNo": "1"})
    assert unknown.json()["error"]["code"] == "BadRequest"
    missing = api.get("purchaseInvoices(6b9e0000-0000-0000-0000-000000000000)")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "Internal_RecordNotFound"
    assert "CorrelationId" in missing.json()["error"]["message"]
    no_token = httpx.get(str(api.base_url) + "vendors", verify=ssl.create_default_context(
        cafile=str(bc.running.ca_file)))
    assert no_token.status_code == 401 and no_token.json()["error"]["code"] == "Authentication_InvalidCredentials"


def test_sandbox_hook_seeds_a_demo_company() -> None:
    from invoicesync_dynamics365 import plugin

    app = plugin.sandbox({"documents": 5, "seed": 3})
    assert isinstance(app, BusinessCentralSandbox) and app.tls
    [company] = app.companies.values()
    assert len(company.vendors) == 5
    settings = app.account_settings("https://127.0.0.1:1")
    assert Dynamics365Settings.model_validate(settings).api_base.startswith("https://127.0.0.1:1/v2.0/")
    assert app.account_secrets() == {"client_secret": "sandbox-only-secret-not-real"}
