"""What Billit leaves undocumented, read tolerantly; what it documents, sent exactly.

The list answer: the docs show ``{"Items", "NextPageLink"}``, the Swagger a bare array. The
NextPageLink: absolute or relative is not documented. The DateTime literal: the docs only show a
date. Each variant is served by the sandbox and the real client must list everything, once."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import pytest
from invoicesync.testing.blobs import blob_bytes
from invoicesync_billit.listing import odata_datetime, page_items

WANTED = ("Invoice", "CreditNote")


def wanted_ids(h: Any) -> set[str]:
    return {str(o["OrderID"]) for o in h.app.company().orders.values() if o["OrderType"] in WANTED}


def bulk_import(h: Any, count: int) -> None:
    """``count`` orders sharing one LastModified: only a walk by OrderID gets past them."""
    for order_id in sorted(h.app.company().orders)[:count]:
        h.app.edit_order(order_id, at=datetime(2025, 7, 1, 8, 30), regenerate=False, OrderType="Invoice")


def assert_complete(h: Any, ids: list[str]) -> None:
    assert len(ids) == len(set(ids)), "an order was listed twice"
    assert set(ids) == wanted_ids(h)


def test_a_bare_array_answer_is_paged_to_the_end(billit: Any) -> None:
    h = billit(documents=300, companies=1)
    h.app.list_shape = "bare"  # the Swagger's declared shape: no NextPageLink at all
    h.connect()
    first = h.list()
    assert_complete(h, first.ids)
    assert len(first.ids) > 120
    deleted = int(first.ids[5])
    h.app.delete_order(deleted)
    assert [d.source_id for d in h.list(first.cursor).deletions] == [str(deleted)]


def test_a_bare_array_with_a_bulk_import_pages_on_by_order_id(billit: Any) -> None:
    h = billit(documents=30, companies=1, settings={"page_size": 5})
    h.app.list_shape = "bare"
    bulk_import(h, 17)
    h.connect()
    assert_complete(h, h.list().ids)
    assert not any("$skip" in q for q in h.app.order_queries)  # an offset shifts under edits
    assert any("OrderID gt" in q.get("$filter", "") for q in h.app.order_queries)


@pytest.mark.parametrize("style", ["absolute", "relative", "relative-path", "foreign", "none"])
def test_every_next_page_link_form_is_followed_on_the_api_host(billit: Any, style: str) -> None:
    h = billit(documents=160, companies=1, settings={"page_size": 5})
    h.app.next_links = style
    bulk_import(h, 17)
    h.connect()
    listing = h.list()
    assert_complete(h, listing.ids)
    # Deleted after the first sync (which lists no deletions: it has seen no order before).
    gone = sorted(h.app.company().orders)[-125:]  # more deletions than one page of 120: a link to follow
    wanted_gone = {str(i) for i in gone if h.app.company().orders[i]["OrderType"] in WANTED}
    for order_id in gone:
        h.app.delete_order(order_id)
    reported = {d.source_id for d in h.list(listing.cursor).deletions}
    if style != "none":  # without a link only the first page of deletions can be known
        assert reported == wanted_gone and h.app.count("GET", r"^/v1/orders/deleted$") == 2
    # Every page came from the sandbox (a foreign origin is rewritten to the configured API).
    assert all(path.startswith(("/v1/", "/__sandbox__")) for _, path, _ in h.app.requests)


def test_the_query_is_sent_in_the_documented_form(billit: Any) -> None:
    h = billit(documents=20, companies=1, settings={"order_types": ["Invoice"], "directions": ["Cost"]})
    h.connect()
    h.list(h.list().cursor)
    raw = h.app.raw_order_queries[-1]
    # Billit's docs: $filter=LastModified+ge+DateTime'2025-04-01'+and+OrderType+eq+'Invoice'...
    assert re.search(r"(^|&)\$filter=LastModified\+ge\+DateTime'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d'"
                     r"\+and\+OrderType\+eq\+'Invoice'\+and\+OrderDirection\+eq\+'Cost'(&|$)", raw), raw
    assert "$orderby=LastModified+asc,OrderID+asc" in raw and "$top=120" in raw


def test_datetime_literals_carry_no_offset_and_whole_seconds() -> None:
    assert odata_datetime(datetime(2024, 3, 10, 15, 0, 49, 720_000)) == "DateTime'2024-03-10T15:00:49'"
    assert odata_datetime(datetime(2024, 3, 10, 15, 0, 49), date_only=True) == "DateTime'2024-03-10'"


def test_a_server_taking_only_date_literals_still_lists_incrementally(
        billit: Any, caplog: pytest.LogCaptureFixture) -> None:
    h = billit(documents=60, companies=1)
    h.connect()
    first = h.list()
    h.app.date_only_literals = True
    changed = int(first.ids[3])
    h.app.edit_order(changed, Reference="edited")
    assert h.list(first.cursor).ids == [str(changed)]
    assert "date alone" in caplog.text
    assert re.search(r"DateTime'\d{4}-\d\d-\d\d'", h.app.order_queries[-1]["$filter"])


def test_a_server_taking_only_date_literals_walks_a_crowded_day_by_order_id(billit: Any) -> None:
    h = billit(documents=40, companies=1, settings={"page_size": 5})
    h.app.date_only_literals = True
    h.app.crowd_one_second(23)
    h.connect()
    assert_complete(h, h.list().ids)
    walks = [q["$filter"] for q in h.app.order_queries if "OrderID gt" in q.get("$filter", "")]
    assert walks and all(re.search(r"lt DateTime'\d{4}-\d\d-\d\d'", f) for f in walks)


def test_page_shapes_are_read_tolerantly() -> None:
    assert page_items([{"OrderID": 1}]) == ([{"OrderID": 1}], None)
    assert page_items({"Items": [], "NextPageLink": None, "Count": None}) == ([], None)
    assert page_items({"Items": [1], "NextPageLink": "/v1/orders?$skip=1"}) == ([1], "/v1/orders?$skip=1")
    assert page_items({"value": [1], "odata.nextLink": "x"}) == ([1], "x")


def test_a_file_answered_as_raw_bytes_is_stored_as_is(billit: Any) -> None:
    h = billit(documents=20, companies=1)
    h.connect()
    h.app.file_shape = "raw"  # one public client expects this; Billit documents the File JSON
    order = next(o for o in h.app.company().orders.values()
                 if o["OrderType"] in WANTED and o.get("ExternalProvider") == "Peppol" and "OrderPDF" in o)
    document = h.fetch(str(order["OrderID"]))
    assert document.pdf is not None and document.pdf.media_type == "application/pdf"
    assert blob_bytes(h.workspace.blobs, document.pdf.sha256).startswith(b"%PDF-1.4")
    assert document.ubl is not None
    assert blob_bytes(h.workspace.blobs, document.ubl.sha256).startswith(b"<?xml")


def test_error_bodies_and_company_ids_are_read_in_every_seen_form() -> None:
    import httpx
    from invoicesync_billit.client import error_fields
    from invoicesync_billit.plugin import companies_of

    def answer(body: bytes) -> httpx.Response:
        return httpx.Response(400, content=body, request=httpx.Request("GET", "https://api.billit.be/v1/orders"))

    documented = b'{"errors":[{"Code":"GenericError","Description":"Could not find a property"}]}'
    assert error_fields(answer(documented)) == ("GenericError", "Could not find a property")
    assert error_fields(answer(b'{"Code":"AccessTokenExpired"}')) == ("AccessTokenExpired", None)
    assert error_fields(answer(b'[{"Code":"InvalidAccessToken"}]')) == ("InvalidAccessToken", None)
    assert error_fields(answer(b'{"Message":"An error has occurred."}')) == (None, "An error has occurred.")

    companies = companies_of({"Companies": [{"PartyID": 574991, "Name": "VILBOX BV", "VATNumber": "BE0437295202"},
                                            {"PartyID": "12", "TabNameAlias": "TWO"}, {"Name": "no id"}]},
                             ctx=None)  # type: ignore[arg-type]
    assert [(c.id, c.name, c.vat_number) for c in companies] == [
        ("574991", "VILBOX BV", "BE0437295202"), ("12", "TWO", None)]


def test_documented_headers_are_sent_on_every_api_call(billit: Any) -> None:
    """ApiKey (or Bearer), PartyID naming the company, ContextPartyID for an accountant,
    Accept: application/json."""
    h = billit(documents=10, companies=2, settings={"context_party_id": 424242})
    h.connect()
    company = h.account.companies[1]
    ids = h.list(company=company).ids
    h.fetch(ids[0], company=company)
    sent = h.app.api_headers
    assert sent and all(s["accept"] == "application/json" and s["apikey"] and s["authorization"] is None
                        and s["contextpartyid"] == "424242" for s in sent)
    assert sent[0]["partyid"] is None  # accountInformation: every company, not one
    assert all(s["partyid"] == company.id for s in sent[1:])


def test_a_timestamp_with_an_offset_keeps_it_and_one_without_is_belgian_time() -> None:
    from invoicesync_billit.listing import localize, parse_timestamp

    plain = "2024-03-10T15:00:49.72"
    assert localize(parse_timestamp(plain), plain).isoformat() == "2024-03-10T15:00:49.720000+01:00"
    zulu = "2024-03-10T15:00:49Z"
    assert parse_timestamp(zulu) == datetime(2024, 3, 10, 15, 0, 49)  # the cursor stays naive
    assert localize(parse_timestamp(zulu), zulu).isoformat() == "2024-03-10T15:00:49+00:00"
