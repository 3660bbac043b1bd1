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


# -- strictness: every refusal the API notes document is on by default, waived only by option -----


def _client(bc: Any) -> httpx.Client:
    from invoicesync_dynamics365.auth import MsalAuthenticator

    settings = Dynamics365Settings.model_validate(bc.account.settings)
    authenticator = MsalAuthenticator(settings, DEMO_SECRET)
    token = authenticator.token()
    authenticator.close()
    return httpx.Client(base_url=f"{settings.api_base}/", headers={"Authorization": f"Bearer {token}"},
                        verify=ssl.create_default_context(cafile=str(bc.running.ca_file)))


def _draft_with_attachment(bc: Any, api: httpx.Client, file_name: str = "x.pdf") -> httpx.Response:
    vendor = next(iter(bc.company.vendors.values()))
    base = f"companies({bc.company.id})"
    invoice = api.post(f"{base}/purchaseInvoices", json={"vendorNumber": vendor["number"],
                                                         "vendorInvoiceNumber": "X1"}).json()
    return api.post(f"{base}/documentAttachments", json={"parentId": invoice["id"], "parentType": "Purchase Invoice",
                                                         "fileName": file_name})


@pytest.mark.parametrize("lenient", [False, True])
def test_file_names_over_250_characters_are_refused(make_bc: Any, lenient: bool) -> None:
    bc = make_bc(lenient=["file_name_length"] if lenient else [])
    with _client(bc) as api:
        assert _draft_with_attachment(bc, api, "x" * 246 + ".pdf").status_code == 201  # exactly 250
        too_long = _draft_with_attachment(bc, api, "x" * 247 + ".pdf")
    if lenient:
        assert too_long.status_code == 201
    else:
        assert too_long.status_code == 400 and too_long.json()["error"]["code"] == "Application_StringExceededLength"


@pytest.mark.parametrize("lenient", [False, True])
def test_a_quoted_company_guid_is_refused(make_bc: Any, lenient: bool) -> None:
    bc = make_bc(lenient=["quoted_guids"] if lenient else [])
    with _client(bc) as api:
        assert api.get(f"companies({bc.company.id})/vendors").status_code == 200
        quoted = api.get(f"companies('{bc.company.id}')/vendors")
    assert quoted.status_code == (200 if lenient else 400)


@pytest.mark.parametrize("lenient", [False, True])
def test_uploads_over_the_size_limit_are_refused(make_bc: Any, lenient: bool) -> None:
    bc = make_bc(max_upload_bytes=10, lenient=["upload_size"] if lenient else [])
    with _client(bc) as api:
        attachment = _draft_with_attachment(bc, api).json()
        url = f"companies({bc.company.id})/documentAttachments({attachment['id']})/attachmentContent"
        assert api.patch(url, content=b"0123456789", headers={"If-Match": "*"}).status_code == 204
        too_big = api.patch(url, content=b"0123456789X", headers={"If-Match": "*"})
    if lenient:
        assert too_big.status_code == 204 and bc.attachments()[0]["byteSize"] == 11
    else:
        assert too_big.status_code == 413 and bc.attachments()[0]["byteSize"] == 10
        assert bc.app.content.read(attachment["id"]) == b"0123456789"  # the stored file is untouched


@pytest.mark.parametrize("lenient", [False, True])
def test_attachment_content_sent_as_json_is_refused(make_bc: Any, lenient: bool) -> None:
    bc = make_bc(lenient=["json_content"] if lenient else [])
    with _client(bc) as api:
        attachment = _draft_with_attachment(bc, api).json()
        url = f"companies({bc.company.id})/documentAttachments({attachment['id']})/attachmentContent"
        sent = api.patch(url, content=b'{"a": 1}', headers={"If-Match": "*", "Content-Type": "application/json"})
    assert sent.status_code == (204 if lenient else 400)


def test_unknown_leniency_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown leniencies"):
        BusinessCentralSandbox(lenient=["everything"])


def test_leniency_from_cli_options() -> None:
    app = BusinessCentralSandbox.from_options({"lenient": "quoted_guids,upload_size"})
    assert app.lenient == {"quoted_guids", "upload_size"}


# -- $filter and $select are checked against the entity's properties and their types, as OData v4 does ---

@pytest.mark.parametrize("lenient", [False, True])
def test_filters_and_selects_are_typed_against_the_entity(make_bc: Any, lenient: bool) -> None:
    """Real BC refuses what our first emulator quietly answered with an empty page: a property the
    entity lacks, a GUID written as a string, a number for a string, and (BC's own limit) ``or``
    across two different fields. An empty page there means "no duplicate": a second draft."""
    bc = make_bc(lenient=["untyped_filters"] if lenient else [])
    base = f"companies({bc.company.id})"
    with _client(bc) as api:
        parent = _draft_with_attachment(bc, api).json()["parentId"]
        fine = [("documentAttachments", f"parentId eq {parent}"),
                ("purchaseInvoices", "vendorInvoiceNumber eq 'X1' and vendorNumber ne 'V0'"),
                ("vendors", "number eq 'V1' or number eq 'V2'"),
                ("vendors", "contains(displayName,'Klok') and blocked ne 'All' and balance ge 0")]
        for entity, filter_ in fine:
            answer = api.get(f"{base}/{entity}", params={"$filter": filter_})
            assert answer.status_code == 200, (filter_, answer.text)
        refused = [("documentAttachments", f"parentId eq '{parent}'"),  # Edm.Guid vs Edm.String
                   ("vendors", "vendorNo eq 'V1'"),  # no such property
                   ("purchaseInvoices", "vendorInvoiceNumber eq 1234"),  # Edm.String vs a number
                   ("purchaseInvoices", f"vendorNumber eq {parent}"),  # Edm.String vs Edm.Guid
                   ("vendors", "contains(id,'0')"),  # contains() takes strings
                   ("vendors", "number eq 'V1' or displayName eq 'X'")]  # BC: no OR on distinct fields
        answers = [api.get(f"{base}/{entity}", params={"$filter": f}) for entity, f in refused]
        answers.append(api.get(f"{base}/vendors", params={"$select": "id,vatNumber"}))
    for answer in answers:
        if lenient:
            assert answer.status_code == 200
        else:
            assert answer.status_code == 400 and answer.json()["error"]["code"] == "BadRequest", answer.text


def test_malformed_paging_options_are_a_bad_request(make_bc: Any) -> None:
    """OData refuses a ``$top``/``$skip`` that is no whole number, or a ``$skiptoken`` it never
    handed out, with a 400 in BC's shape (not a server error a client would retry)."""
    bc = make_bc()
    with _client(bc) as api:
        for option, value in (("$top", "ten"), ("$top", "-1"), ("$skip", "1.5"), ("$skiptoken", "x")):
            answer = api.get(f"companies({bc.company.id})/vendors", params={option: value})
            assert answer.status_code == 400 and answer.json()["error"]["code"] == "BadRequest", (option, answer.text)
