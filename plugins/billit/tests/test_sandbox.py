"""The emulator itself speaks Billit's documented wire protocol."""

from __future__ import annotations

import base64
import json
import random
import re
import xml.etree.ElementTree as ET
from decimal import Decimal
from typing import Any

import httpx
import pytest
from invoicesync.plugins import Plugins
from invoicesync_billit.filejson import FileFormatError, FileJsonScanner
from invoicesync_billit.sandbox import DEMO_API_KEY, BillitSandbox
from invoicesync_billit.sandbox.files import make_pdf
from invoicesync_billit.settings import BillitSettings

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?$")


@pytest.fixture
def api(serve_sandbox: Any) -> Any:
    app = BillitSandbox(documents=150, companies=2, seed=3)
    server = serve_sandbox(app)
    with httpx.Client(base_url=server.url, headers={"apikey": DEMO_API_KEY}, timeout=10) as client:
        client.app = app  # type: ignore[attr-defined]
        yield client


def test_filter_on_a_property_outside_the_whitelist_is_a_generic_error(api: Any) -> None:
    answer = api.get("/v1/orders", params={"$filter": "VATNumber eq 'BE0437295202'"})
    assert answer.status_code == 400
    error = answer.json()["errors"][0]
    assert error["Code"] == "GenericError"
    assert "Could not find a property named 'VATNumber'" in error["Description"]


def test_documented_example_queries_work(api: Any) -> None:
    for query in ("OrderType eq 'Invoice' and OrderDirection eq 'Cost'",
                  "OrderType+eq+'Invoice'+and+OrderDirection+eq+'Cost'+and+LastModified+ge+DateTime'2025-01-10'",
                  "OrderDate ge datetime'2025-01-01' and OrderDate le datetime'2025-12-31'",
                  "Paid eq false", "CounterParty/PartyID eq 600001"):
        answer = api.get(f"/v1/orders?$filter={query}&$orderby=LastModified asc")
        assert answer.status_code == 200, (query, answer.text)
        items = answer.json()["Items"]
        if "Cost" in query:
            assert items and all(i["OrderDirection"] == "Cost" and i["OrderType"] == "Invoice" for i in items)


def test_paging_caps_top_at_120_and_next_page_link_walks_everything(api: Any) -> None:
    first = api.get("/v1/orders", params={"$top": 500, "$orderby": "OrderID asc", "$inlinecount": "allpages"}).json()
    assert len(first["Items"]) == 120 and first["Count"] == 150
    second = httpx.get(first["NextPageLink"], headers={"ApiKey": DEMO_API_KEY}).json()
    assert len(second["Items"]) == 30 and second["NextPageLink"] is None
    ids = [i["OrderID"] for i in first["Items"] + second["Items"]]
    assert ids == sorted(set(ids))


def test_list_items_are_summaries_with_billit_timestamps(api: Any) -> None:
    item = api.get("/v1/orders", params={"$top": 1}).json()["Items"][0]
    assert set(item["OrderPDF"]) <= {"FileID"} and "OrderLines" not in item and "Customer" not in item
    assert STAMP.match(item["LastModified"]) and STAMP.match(item["Created"])
    full = api.get(f"/v1/orders/{item['OrderID']}").json()
    assert "FileName" in full.get("OrderPDF", {"FileName": ""}) and "OrderLines" in full


def test_amounts_are_json_numbers_with_billits_scale(api: Any) -> None:
    """Billit writes .NET decimals with their scale: 864.00, 21.00, 1.00000 — never 864.0."""
    item = api.get("/v1/orders", params={"$top": 1}).json()["Items"][0]
    full = api.get(f"/v1/orders/{item['OrderID']}")
    text = full.text
    for total in ("TotalExcl", "TotalVAT", "TotalIncl", "ToPay"):
        assert re.search(rf'"{total}":\d+\.\d\d[,}}]', text), (total, text[:400])
    assert '"FXRateToForeign":1.00000' in text
    order = json.loads(full.content, parse_float=Decimal)
    line = order["OrderLines"][0]
    assert line["VATPercentage"].as_tuple().exponent == -2 and line["Quantity"].as_tuple().exponent == -1
    # The VAT groups add up to the order's totals, to the cent.
    for total in ("TotalExcl", "TotalVAT", "TotalIncl"):
        assert sum(g[total] for g in order["VatGroups"]) == order[total]
    listed = api.get("/v1/orders", params={"$top": 5}).text
    assert not re.search(r'"Total(Excl|VAT|Incl)":\d+\.\d[,}]', listed)  # no one-decimal amounts anywhere


def test_an_order_with_a_malformed_amount_still_serves_its_files(api: Any) -> None:
    """Only the order's JSON is broken; its re-rendered PDF and UBL download whole."""
    order = next(o for o in api.app.company().orders.values()
                 if o.get("ExternalProvider") == "Peppol" and "OrderPDF" in o)
    api.app.edit_order(order["OrderID"], TotalIncl="not a number")
    assert '"TotalIncl":"not a number"' in api.get(f"/v1/orders/{order['OrderID']}").text
    for entry in (order["OrderPDF"], order["Attachments"][0]):
        answer = api.get(f"/v1/files/{entry['FileID']}")
        assert answer.status_code == 200 and base64.b64decode(answer.json()["FileContent"])


def test_headers_are_case_insensitive_and_party_id_selects_the_company(api: Any) -> None:
    second = api.app.companies[1]
    answer = api.get("/v1/orders", params={"$top": 1}, headers={"PARTYID": str(second.party_id)})
    assert answer.json()["Items"][0]["CompanyID"] == second.party_id
    default = api.get("/v1/orders", params={"$top": 1}).json()["Items"][0]
    assert default["CompanyID"] == api.app.companies[0].party_id  # no PartyID: the oldest company
    denied = api.get("/v1/orders", headers={"partyid": "1"})
    assert denied.status_code == 401 and denied.json()["errors"][0]["Code"]
    assert httpx.get(str(api.base_url) + "/v1/orders").status_code == 401


def test_files_are_json_with_base64_content_real_pdf_and_ubl(api: Any) -> None:
    order = next(o for o in api.app.company().orders.values() if o.get("ExternalProvider") == "Peppol")
    pdf = api.get(f"/v1/files/{order['OrderPDF']['FileID']}").json()
    assert pdf["MimeType"] == "application/pdf" and pdf["FileName"] == order["OrderPDF"]["FileName"]
    content = base64.b64decode(pdf["FileContent"], validate=True)
    _assert_valid_pdf(content)
    ubl = api.get(f"/v1/files/{order['Attachments'][0]['FileID']}").json()
    root = ET.fromstring(base64.b64decode(ubl["FileContent"]))
    assert root.tag.endswith("StandardBusinessDocument")
    assert any(el.tag.endswith("}Invoice") or el.tag.endswith("}CreditNote") for el in root)
    other = api.get(f"/v1/files/{order['OrderPDF']['FileID']}", headers={"PartyID": str(api.app.companies[1].party_id)})
    assert other.status_code == 401  # files belong to their company


def test_seeded_data_is_realistic_and_deterministic() -> None:
    one, two = BillitSandbox(documents=300, seed=9, companies=1), BillitSandbox(documents=300, seed=9, companies=1)
    orders = list(one.company().orders.values())
    assert json.dumps(orders, sort_keys=True, default=str) == \
        json.dumps(list(two.company().orders.values()), sort_keys=True, default=str)
    assert {o["OrderDirection"] for o in orders} == {"Income", "Cost"}
    assert {"Invoice", "CreditNote"} <= {o["OrderType"] for o in orders}
    assert any("OrderPDF" not in o for o in orders)
    assert any(o["Attachments"] and o["Attachments"][0]["FileName"].endswith(".xml") for o in orders)
    stamps = [o["LastModified"] for o in orders]
    assert len(stamps) > len(set(stamps)), "some orders share an instant (bulk imports)"


def test_sandbox_hook_and_demo_settings_through_the_entry_point(serve_sandbox: Any, workspace_factory: Any) -> None:
    plugins = Plugins.discover(only=["billit"])
    app = plugins.call("billit", "sandbox", options={"documents": 7, "seed": 2, "companies": 1})
    assert isinstance(app, BillitSandbox) and len(app.company().orders) == 7
    server = serve_sandbox(app)
    assert plugins.get("billit").info.settings is BillitSettings
    settings = BillitSettings.model_validate(app.account_settings(server.url))
    assert settings.auth == "api_key" and settings.api_base() == server.url
    assert set(app.account_secrets()) == {"api_key"}


def test_file_scanner_decodes_any_chunking_and_member_order() -> None:
    rng = random.Random(5)
    for trial in range(60):
        data = rng.randbytes(rng.randrange(0, 4000))
        members = {"FileID": "7f1a355e-526e-4523-b3df-44a47467537a", "FileName": 'a "quoted", {odd} name.pdf',
                   "MimeType": "application/pdf", "FileContent": base64.b64encode(data).decode(),
                   "Extra": {"nested": [1, {"x": "}"}]}}
        keys = list(members)
        rng.shuffle(keys)
        text = json.dumps({k: members[k] for k in keys}, indent=rng.choice([None, 1]))
        if trial % 2:
            text = text.replace("/", "\\/")  # some serializers escape the slash
        raw = text.encode()
        cuts = sorted(rng.sample(range(1, max(2, len(raw))), min(20, max(0, len(raw) - 2))))
        chunks = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
        scanner = FileJsonScanner()
        assert b"".join(scanner.decode(chunks)) == data
        assert scanner.fields["FileName"] == members["FileName"]


@pytest.mark.parametrize("body", [b'{"FileContent": "QUJ$"}', b'{"FileContent": null}', b'{"FileContent": "QUJD',
                                  b'{"FileContent": 12}', b"[]"])
def test_file_scanner_rejects_broken_answers(body: bytes) -> None:
    with pytest.raises(FileFormatError):
        list(FileJsonScanner().decode([body]))


def _assert_valid_pdf(content: bytes) -> None:
    assert content.startswith(b"%PDF-1.4") and content.rstrip().endswith(b"%%EOF")
    xref_at = int(content.rsplit(b"startxref", 1)[1].split()[0])
    assert content[xref_at:xref_at + 4] == b"xref"
    lines = content[xref_at:].split(b"\n")
    count = int(lines[1].split()[1])
    for number in range(1, count):
        offset = int(lines[2 + number].split()[0])
        assert content[offset:].startswith(f"{number} 0 obj".encode())


def test_generated_pdf_has_a_correct_xref() -> None:
    _assert_valid_pdf(make_pdf(["Invoice (test)", "Total: 121.00 EUR"]))
