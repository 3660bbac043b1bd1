"""Listing and fetching: a first import of more than 1,000 orders, incremental runs after edits
and deletions, and the LastModified boundary (shared instants, crashes, edits while paging)."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from invoicesync import Checkpoint, Direction, DocumentKind, DocumentRef
from invoicesync.testing.blobs import blob_bytes
from invoicesync_billit.listing import Cursor, parse_timestamp

WANTED = ("Invoice", "CreditNote")


def wanted_ids(h: Any, company: int | None = None) -> set[str]:
    return {str(o["OrderID"]) for o in h.app.company(company).orders.values() if o["OrderType"] in WANTED}


def test_first_import_of_1100_orders_pages_without_gaps_or_repeats(billit: Any) -> None:
    h = billit(documents=1100, companies=1, seed=7)
    h.connect()
    listing = h.list()

    assert len(listing.ids) == len(set(listing.ids)), "an order was listed twice"
    assert set(listing.ids) == wanted_ids(h), "listing differs from Billit's invoices + credit notes"
    assert len(listing.ids) > 1000
    stamps = [r.modified_at for r in listing.refs]
    assert stamps == sorted(stamps), "refs must come in cursor (LastModified) order"
    # Billit pages hold at most 120 orders: one checkpoint per page, plus the final one.
    pages = h.app.count("GET", r"^/v1/orders$")
    assert pages >= 1100 // 120 and len(listing.checkpoints) == pages + 1
    # A first sync has seen no order yet, so none of them can have been deleted: not asked.
    assert h.app.count("GET", r"^/v1/orders/deleted$") == 0

    # Fetch them all as the runner does: concurrently, on one context.
    ctx = h.context()
    with ThreadPoolExecutor(4) as pool:
        documents = list(pool.map(lambda ref: h.fetch(ref.source_id, ctx), listing.refs))
    kinds = Counter(d.kind for d in documents)
    directions = Counter(d.direction for d in documents)
    assert kinds[DocumentKind.INVOICE] and kinds[DocumentKind.CREDIT_NOTE]
    assert directions[Direction.SALES] and directions[Direction.PURCHASE]
    for document in documents:
        order = h.app.company().orders[int(document.source_id)]
        assert document.number == order["OrderNumber"]
        assert str(document.amount_incl_vat) == str(order["TotalIncl"])  # exact, never via float math
        expected_files = int("OrderPDF" in order) + len(order["Attachments"])
        assert len(document.files) == expected_files
        if order.get("ExternalProvider") == "Peppol":
            assert document.ubl is not None and document.ubl.media_type == "text/xml"
            assert blob_bytes(h.workspace.blobs, document.ubl.sha256).startswith(b"<?xml")
        if document.pdf is not None:
            assert blob_bytes(h.workspace.blobs, document.pdf.sha256).startswith(b"%PDF-1.4")
        else:
            assert document.raw["pdf_missing"] is True


def test_incremental_run_after_edits_and_deletions(billit: Any) -> None:
    h = billit(documents=200, companies=1)
    h.connect()
    first = h.list()
    orders = h.app.company().orders
    invoices = [int(i) for i in first.ids]
    edited = invoices[3], invoices[50], invoices[-1]
    for order_id in edited:
        h.app.edit_order(order_id, Paid=True, OrderStatus="Paid")
    deleted = invoices[10], invoices[120]
    for order_id in deleted:
        h.app.delete_order(order_id)
    added = h.app.add_order(OrderType="Invoice")
    offer = h.app.add_order(OrderType="Offer")  # not imported by default

    second = h.list(first.cursor)
    assert sorted(second.ids) == sorted(str(i) for i in (*edited, added["OrderID"]))
    assert sorted(d.source_id for d in second.deletions) == sorted(str(i) for i in deleted)
    assert str(offer["OrderID"]) not in second.ids
    assert h.fetch(str(edited[0])).paid is True
    assert orders[edited[0]]["Paid"] is True

    third = h.list(second.cursor)
    assert third.ids == [] and third.deletions == []  # nothing changed, nothing again


def test_a_first_sync_skips_the_deletions_but_a_later_full_listing_does_not(billit: Any) -> None:
    h = billit(documents=30, companies=1)
    gone_before = sorted(h.app.company().orders)[0]
    # Deleted before we ever looked (longer ago than the margin): nothing of ours to delete.
    h.app.delete_order(gone_before, at=datetime.now() - timedelta(days=3))
    h.connect()
    first = h.list()
    assert first.deletions == [] and h.app.count("GET", r"^/v1/orders/deleted$") == 0
    assert Cursor.parse(first.cursor).deleted_since is not None  # the next run asks from about now

    deleted = int(first.ids[2])
    h.app.delete_order(deleted)
    second = h.list(first.cursor)
    assert [d.source_id for d in second.deletions] == [str(deleted)]  # newer than the margin
    assert h.app.count("GET", r"^/v1/orders/deleted$") == 1

    # ``--full`` lists without a cursor too, but this company was listed before: an order it
    # imported may have been deleted since, so the deletions are asked for again.
    full = h.list()
    assert {d.source_id for d in full.deletions} >= {str(deleted)}
    assert h.app.count("GET", r"^/v1/orders/deleted$") == 2


def test_orders_sharing_the_boundary_instant_are_neither_lost_nor_repeated(billit: Any) -> None:
    h = billit(documents=40, companies=1, settings={"page_size": 7})
    h.connect()
    # Make groups of orders share one LastModified, straddling page boundaries.
    ids = sorted(h.app.company().orders)
    base = datetime(2025, 6, 1, 12, 0, 0, 250_000)
    for group, start in enumerate((5, 12, 20)):
        for order_id in ids[start:start + 4]:
            h.app.edit_order(order_id, at=base + timedelta(minutes=group), regenerate=False,
                             OrderType="Invoice")
    full = h.list()
    assert len(full.ids) == len(set(full.ids)) and set(full.ids) == wanted_ids(h)

    # A crash after any checkpoint: resuming from it yields exactly what came after it.
    checkpoints = []
    seen = 0
    for item in h.call("list_documents", company=h.company, cursor=None):
        if isinstance(item, Checkpoint):
            checkpoints.append((seen, item.cursor))
        elif isinstance(item, DocumentRef):
            seen += 1
    assert len(checkpoints) > 5
    for done, cursor in checkpoints:
        resumed = h.list(cursor).ids
        assert resumed == full.ids[done:], f"resume after {done} orders from {cursor}"

    # A new order stamped exactly at the stored boundary instant is still picked up, once.
    boundary = Cursor.parse(full.cursor)
    late = h.app.add_order(OrderType="Invoice", at=parse_timestamp(boundary.last_modified))
    assert h.list(full.cursor).ids == [str(late["OrderID"])]


def test_more_orders_at_one_instant_than_a_page_follows_next_page_link(billit: Any) -> None:
    h = billit(documents=30, companies=1, settings={"page_size": 5})
    h.connect()
    instant = datetime(2025, 7, 1, 8, 30)
    for order_id in sorted(h.app.company().orders)[:17]:  # a bulk import: 17 orders, one instant
        h.app.edit_order(order_id, at=instant, regenerate=False, OrderType="Invoice")
    listing = h.list()
    assert len(listing.ids) == len(set(listing.ids)) and set(listing.ids) == wanted_ids(h)
    requests = [p for m, p, _ in h.app.requests if p == "/v1/orders"]
    assert len(requests) > 6


def test_an_edit_while_paging_does_not_push_an_order_out_of_sight(billit: Any) -> None:
    """With $skip paging, editing an order on page 1 shifts the rest one place forward and the
    first order of page 2 is never seen; keyset paging does not lose it."""
    h = billit(documents=60, companies=1, settings={"page_size": 10, "order_types": ["Invoice", "CreditNote",
                                                                                     "Offer", "DeliveryNote",
                                                                                     "OrderForm"]})
    h.connect()
    expected = {str(i) for i in h.app.company().orders}
    seen: list[str] = []
    edited = False
    for item in h.call("list_documents", company=h.company, cursor=None):
        if isinstance(item, DocumentRef):
            seen.append(item.source_id)
        elif isinstance(item, Checkpoint) and not edited:
            h.app.edit_order(int(seen[0]), Reference="edited while listing")
            edited = True
    assert expected <= set(seen)
    assert Counter(seen)[seen[0]] == 2  # the edited order comes again, as its new version


def test_only_documented_filters_are_sent(billit: Any) -> None:
    h = billit(documents=150, companies=1, settings={"order_types": ["CreditNote"], "directions": ["Cost"]})
    h.connect()
    first = h.list()
    h.list(first.cursor)
    filters = [q for q in _queries(h) if "$filter" in q]
    assert filters
    for query in filters:
        properties = {w for w in query["$filter"].replace("(", " ").split() if w[0].isupper() and "'" not in w}
        assert properties <= {"LastModified", "OrderType", "OrderDirection"}, query
    assert any("LastModified ge DateTime'" in q["$filter"] for q in filters)
    assert all(q["$orderby"] == "LastModified asc,OrderID asc" for q in _queries(h))
    assert all(int(q["$top"]) <= 120 for q in _queries(h))
    expected = {str(o["OrderID"]) for o in h.app.company().orders.values()
                if o["OrderType"] == "CreditNote" and o["OrderDirection"] == "Cost"}
    assert expected and set(first.ids) == expected


def _queries(h: Any) -> list[dict[str, str]]:
    return list(h.app.order_queries)
