"""Keyset paging inside one crowded second: edits racing the listing never make an order be
skipped, across pages and across runs that stop and resume from the stored cursor."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from invoicesync import Checkpoint, DocumentRef, ListingError, RemoteError
from invoicesync_billit.listing import Cursor, parse_timestamp

EVERY_TYPE = {"order_types": ["Invoice", "CreditNote", "Offer", "DeliveryNote", "OrderForm"]}


def runs_that_stop_early(h: Any, pages_per_run: int) -> Iterator[tuple[int, list[DocumentRef]]]:
    """Runs of the listing that each stop after ``pages_per_run`` checkpoints (as a crash, or a
    run cut short, would) and resume from the last cursor stored, until one runs to its end."""
    cursor: str | None = None
    for run in range(200):
        refs: list[DocumentRef] = []
        checkpoints = 0
        items = iter(h.call("list_documents", company=h.company, cursor=cursor))
        for item in items:
            assert not isinstance(item, ListingError), item
            if isinstance(item, DocumentRef):
                refs.append(item)
            elif isinstance(item, Checkpoint):
                cursor = item.cursor
                checkpoints += 1
                if checkpoints == pages_per_run:
                    break
        finished = next(items, None) is None  # the run is cut here unless nothing was left
        yield run, refs
        if finished:
            return
    raise AssertionError("the listing never came to an end")


def latest_versions_listed(h: Any, refs: list[DocumentRef]) -> None:
    """Every order is listed, and its current version (its LastModified now) among the refs."""
    listed = {(r.source_id, r.modified_at.replace(tzinfo=None) if r.modified_at else None) for r in refs}
    for order_id, order in h.app.company().orders.items():
        assert (str(order_id), parse_timestamp(order["LastModified"])) in listed, \
            f"order {order_id} (LastModified {order['LastModified']}) was never listed in that version"


@pytest.mark.parametrize("same_instant", [True, False], ids=["one-instant", "one-second"])
def test_edits_between_pages_inside_one_second_lose_nothing_across_runs(billit: Any, same_instant: bool) -> None:
    h = billit(documents=60, companies=1, settings={"page_size": 7, **EVERY_TYPE})
    crowded = h.app.crowd_one_second(45, same_instant=same_instant)  # more than six full pages
    h.app.racing_edits = 12  # after each of the next 12 pages, one order it listed is edited
    h.connect()
    refs: list[DocumentRef] = []
    for _, run_refs in runs_that_stop_early(h, pages_per_run=2):
        refs += run_refs
    assert h.app.racing_edits == 0
    assert {r.source_id for r in refs} >= {str(i) for i in crowded}
    latest_versions_listed(h, refs)
    # The second was walked by OrderID, never by an offset.
    filters = [q.get("$filter", "") for q in h.app.order_queries]
    assert any("OrderID gt" in f and "LastModified lt DateTime'" in f for f in filters)
    assert not any("$skip" in q for q in h.app.order_queries)


@pytest.mark.parametrize("same_instant", [True, False], ids=["one-instant", "one-second"])
def test_one_uninterrupted_run_through_a_crowded_second_with_edits(billit: Any, same_instant: bool) -> None:
    h = billit(documents=80, companies=1, settings={"page_size": 10, **EVERY_TYPE})
    h.app.crowd_one_second(64, same_instant=same_instant)
    h.app.racing_edits = 9
    h.connect()
    before = {str(i) for i in h.app.company().orders}
    first = h.list()
    assert h.app.racing_edits == 0
    assert before <= set(first.ids), "one run must list every order that existed when it began"
    second = h.list(first.cursor)  # picks up the edits made after the last page
    latest_versions_listed(h, first.refs + second.refs)
    assert h.list(second.cursor).ids == []  # and then nothing is left


def test_a_run_stopped_inside_the_second_resumes_there_from_the_cursor(billit: Any) -> None:
    h = billit(documents=40, companies=1, settings={"page_size": 5, **EVERY_TYPE})
    crowded = h.app.crowd_one_second(23)
    h.connect()
    walked = None
    for item in h.call("list_documents", company=h.company, cursor=None):
        if isinstance(item, Checkpoint) and Cursor.parse(item.cursor).after is not None:
            walked = Cursor.parse(item.cursor)
            break
    assert walked is not None and walked.window is not None
    assert parse_timestamp(walked.window) == parse_timestamp(h.app.company().orders[crowded[0]]["LastModified"]
                                                             ).replace(microsecond=0)
    rest = h.list(walked.dump())
    # Resuming lists the crowded orders above the cursor's OrderID, each once, and what follows.
    assert len(rest.ids) == len(set(rest.ids))
    assert {str(i) for i in crowded if i > (walked.after or 0)} <= set(rest.ids)
    later = {str(i) for i, o in h.app.company().orders.items()
             if parse_timestamp(o["LastModified"]) > parse_timestamp(walked.window).replace(microsecond=999_999)}
    assert later <= set(rest.ids)


def test_a_server_ignoring_the_keyset_filter_is_an_error_not_a_loop(billit: Any) -> None:
    h = billit(documents=30, companies=1, settings={"page_size": 5, **EVERY_TYPE})
    h.app.crowd_one_second(12)
    orders = h.app.company().orders
    stuck = [{"OrderID": i, "LastModified": orders[i]["LastModified"], "OrderType": "Invoice"}
             for i in sorted(orders)[:5]]  # the same full page, whatever is asked
    h.app.add_fault({"status": 200, "path": "^/v1/orders$", "times": None,
                     "body": {"Items": stuck, "NextPageLink": None}})
    h.connect()
    with pytest.raises(RemoteError, match="repeat"):
        h.list()
    assert h.app.count("GET", r"^/v1/orders$") < 10


def test_through_the_runner_every_order_reaches_the_library_in_its_latest_version(
        workspace_factory: Any, serve_sandbox: Any) -> None:
    from invoicesync import NonInteractiveUI, PluginKind
    from invoicesync.accounts import connect
    from invoicesync.pipeline import EXIT_OK, run_sync
    from invoicesync.plugins import Plugins
    from invoicesync_billit import plugin
    from invoicesync_billit.sandbox import BillitSandbox

    app = BillitSandbox(documents=50, companies=1, seed=9)
    app.crowd_one_second(40, same_instant=True)
    app.racing_edits = 6
    running = serve_sandbox(app)
    workspace = workspace_factory(plugins=Plugins.from_objects({"billit": (PluginKind.SOURCE, plugin)}))
    for key, value in app.account_secrets().items():
        workspace.secrets("books").set(key, value)
    connect(workspace, "billit", ui=NonInteractiveUI(), name="books", companies=("*",),
            settings={**app.account_settings(running.url), "page_size": 6, **EVERY_TYPE})
    assert run_sync(workspace).exit_code == EXIT_OK
    assert app.racing_edits == 0
    assert run_sync(workspace).exit_code == EXIT_OK  # the edits made after the last page
    for order_id, order in app.company().orders.items():
        document = workspace.state.get_document(f"billit:books:{app.company().party_id}:{order_id}")
        assert document is not None, order_id
        assert document.raw["LastModified"] == order["LastModified"], order_id


def test_lookback_lists_an_order_committed_late_before_the_cursor(billit: Any) -> None:
    from datetime import timedelta

    for lookback, expected in ((0, False), (30, True)):
        h = billit(documents=20, companies=1, settings={"lookback_seconds": lookback, **EVERY_TYPE})
        h.connect()
        first = h.list()
        boundary = parse_timestamp(Cursor.parse(first.cursor).last_modified)
        assert boundary is not None
        # Committed now, but stamped 10 s before the stored cursor (Billit's commit lag).
        late = h.app.add_order(OrderType="Invoice", at=boundary - timedelta(seconds=10))
        second = h.list(first.cursor)
        assert (str(late["OrderID"]) in second.ids) is expected, lookback
        assert len(second.ids) == len(set(second.ids))
        if lookback:
            third = h.list(second.cursor)
            assert str(late["OrderID"]) in third.ids  # re-read every run; the library dedupes it
            assert Cursor.parse(third.cursor).last_modified == Cursor.parse(second.cursor).last_modified


def test_lookback_over_a_crowded_second_does_not_walk_back(billit: Any) -> None:
    h = billit(documents=30, companies=1, settings={"lookback_seconds": 3600 * 24 * 400, "page_size": 5,
                                                    **EVERY_TYPE})
    from datetime import datetime

    h.app.crowd_one_second(12, same_instant=True, at=datetime(2025, 1, 1))  # the oldest orders
    h.connect()
    first = h.list()
    second = h.list(first.cursor)
    # The first page looks back (into the crowded second); the next starts at the cursor again.
    assert len(second.ids) == 5 and Cursor.parse(second.cursor).window is None
    assert Cursor.parse(second.cursor).last_modified == Cursor.parse(first.cursor).last_modified
    assert h.list(second.cursor).ids == second.ids  # the same re-read, never an endless one


def test_an_order_stamped_in_the_repeated_hour_of_a_dst_fall_back_is_not_lost(billit: Any) -> None:
    """Billit's LastModified is Belgian wall time without an offset (API notes §3d), so on the last
    Sunday of October 02:00-03:00 happens twice. An order edited in the second 02:10, after a run
    stored a cursor at the first 02:40, sorts before the cursor: ``ge 02:40`` alone never lists it.
    The same wall times on another day are not re-read (no lookback is configured)."""
    from datetime import datetime, timedelta

    for day, repeated in ((datetime(2025, 10, 26), True), (datetime(2025, 10, 25), False)):
        h = billit(documents=10, companies=1, settings=EVERY_TYPE)
        h.connect()
        first_pass = h.app.add_order(OrderType="Invoice", at=day + timedelta(hours=2, minutes=40))
        first = h.list()
        assert Cursor.parse(first.cursor).last_modified == first_pass["LastModified"]
        # An hour later by the clock, the wall clock shows 02:10 again (CET after CEST).
        second_pass = h.app.add_order(OrderType="Invoice", at=day + timedelta(hours=2, minutes=10))
        second = h.list(first.cursor)
        assert (str(second_pass["OrderID"]) in second.ids) is repeated, day
        assert len(second.ids) == len(set(second.ids))
        later = h.app.add_order(OrderType="Invoice", at=day + timedelta(hours=3, minutes=5))
        third = h.list(second.cursor)
        assert str(later["OrderID"]) in third.ids
        assert Cursor.parse(third.cursor).last_modified == later["LastModified"]


def test_a_deletion_stamped_in_the_repeated_hour_of_a_dst_fall_back_is_reported(billit: Any) -> None:
    """The deletions cursor has the same blind spot as the orders' one: a deletion in the second
    02:10 sorts before a cursor at the first 02:40. Reported again, a deletion changes nothing."""
    import json
    from datetime import datetime, timedelta

    for day, repeated in ((datetime(2025, 10, 26), True), (datetime(2025, 10, 25), False)):
        h = billit(documents=10, companies=1, settings=EVERY_TYPE)
        h.connect()
        first = h.list()
        cursor = {**json.loads(first.cursor), "del": (day + timedelta(hours=2, minutes=40)).isoformat()}
        gone = sorted(h.app.company().orders)[0]
        h.app.delete_order(gone, at=day + timedelta(hours=2, minutes=10))
        second = h.list(json.dumps(cursor))
        assert (str(gone) in {d.source_id for d in second.deletions}) is repeated, day
        assert Cursor.parse(second.cursor).deleted_since == cursor["del"]  # the cursor never moves back
