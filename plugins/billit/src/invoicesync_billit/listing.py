"""Incremental listing of a company's orders: ``GET /v1/orders`` ordered by ``LastModified``.

The cursor
----------
Billit recommends polling on ``LastModified`` (it changes on every edit, status updates too).
The cursor is ``{"lm": "<LastModified of the last listed order>", "ids": [OrderIDs listed at
exactly that instant], "del": "<newest deletion seen>"}``. The next query is
``$filter=LastModified ge DateTime'<lm>'`` — ``ge``, not ``gt``, so an order that shares the
boundary instant but was not listed yet (the next page, or committed a moment later) is never
lost. The orders at that instant that *were* listed are in ``ids`` and are skipped, so they are
not imported twice either. (Should ``ids`` ever be dropped, re-yielding them is still harmless:
the library deduplicates by id and version.) ``LastModified`` strings are kept exactly as Billit
sent them: they carry no offset, and converting them could shift the boundary.

Paging
------
``$skip`` paging (and ``NextPageLink``, which is ``$skip`` underneath) is an offset into a list
that moves while we read it: when an order on an earlier page is edited it jumps to the end and
every later order shifts one place forward, so the order at the page boundary is never seen —
and the cursor would then move past it for good. So every page is a fresh keyset query that no
edit can shift:

* from the last instant seen: ``LastModified ge S`` (``$orderby=LastModified asc,OrderID asc``),
  skipping the ids already listed at that instant;
* when a full page lies entirely inside one second (a bulk import: filter literals are whole
  seconds, so ``ge S`` would return that same page again), that second is walked by OrderID:
  ``LastModified ge S and LastModified lt S+1s and OrderID gt X`` with ``$orderby=OrderID asc``
  (ordered by OrderID alone: within the second the LastModified values differ in their
  milliseconds, and a keyset on OrderID is only exact when the rows come in OrderID order).
  An order edited meanwhile leaves the second (it is listed again later, as its new version);
  the ones still to come keep their OrderIDs, so none is skipped. The cursor carries
  ``"win": S, "after": X`` while inside such a second, so a run that stops there resumes there.
  Once the second is done the listing goes on from ``ge S+1s``.

``NextPageLink`` is only read as "more records are left" (a short page with a link is not the
end); the listing ends on a short page without one. Both ``OrderID`` and ``LastModified`` are on
Billit's filter whitelist; ``lt`` is standard OData v3.

Only documented, whitelisted filter properties are used (``LastModified``, ``OrderType``,
``OrderDirection``); OData ``or`` is not documented, so several wanted types are filtered here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Generator, Iterator
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from invoicesync import Checkpoint, Deletion, DocumentRef, ListingError, RemoteError

from .client import SERVICE, BillitClient
from .deleted import list_deletions
from .settings import BillitSettings
from .wire import (
    BILLIT_TZ,
    ORDERS,
    Cursor,
    as_int_id,
    encode_query,
    localize,
    odata_datetime,
    page_items,
    parse_timestamp,
    repeated_hour,
    wire_timestamp,
)

__all__ = ["Cursor", "OrderLister", "as_int_id", "localize", "odata_datetime", "page_items", "parse_timestamp"]

ORDER_BY = "LastModified asc,OrderID asc"
#: Inside one crowded second the keyset is the OrderID alone (see "Paging" above).
WINDOW_ORDER_BY = "OrderID asc"
INT32 = (-(2**31), 2**31 - 1)
#: How far before now a first sync starts the deletions cursor. Billit's timestamps carry no offset
#: (Belgian time, presumably) and its clock is not ours: a day covers any time zone and any skew, and
#: costs nothing on the wire (``/v1/orders/deleted`` takes no filter: the cursor only filters what
#: it returns), while a deletion stamped before the cursor would never be reported.
FIRST_SYNC_DELETIONS_MARGIN = timedelta(days=1)


def base_filters(settings: BillitSettings) -> list[str]:
    filters = []
    if len(settings.order_types) == 1:
        filters.append(f"OrderType eq '{settings.order_types[0]}'")
    if len(settings.directions) == 1:
        filters.append(f"OrderDirection eq '{settings.directions[0]}'")
    return filters


def billit_now() -> datetime:
    """Now as Billit writes it: naive, in Belgian time (the margin absorbs any error in that)."""
    return datetime.now(BILLIT_TZ).replace(tzinfo=None)


class Row(NamedTuple):
    """A listed order the walk can use: its key, and the summary Billit listed."""

    order_id: int
    stamp: datetime
    text: str
    item: dict[str, Any]


class OrderLister:
    """Yields one company's changed orders, deletions and checkpoints in cursor order."""

    def __init__(self, client: BillitClient, settings: BillitSettings, party_id: str,
                 log: logging.Logger) -> None:
        self.client = client
        self.settings = settings
        self.party_id = party_id
        self.log = log
        self.date_only = False  # set when the server refuses a DateTime with a time of day
        self._reported: set[str] = set()  # unusable items already reported in this run
        self._lookback = timedelta(0)  # how far before the cursor the run's first page re-reads

    def changes(self, cursor_text: str | None, *, first_sync: bool = False
                ) -> Iterator[DocumentRef | Deletion | ListingError | Checkpoint]:
        """``first_sync``: this account never listed the company before (not even with ``--full``),
        so no order it could hold can have been deleted yet: the deletions listing is skipped, and
        its cursor starts a safe margin before now, so every later deletion is reported."""
        cursor = Cursor.parse(cursor_text)
        skip_deletions = first_sync and cursor_text is None
        if skip_deletions and self.settings.import_deletions:
            cursor.deleted_since = wire_timestamp(billit_now() - FIRST_SYNC_DELETIONS_MARGIN)
        self._lookback = max(timedelta(seconds=self.settings.lookback_seconds),
                             repeated_hour(parse_timestamp(cursor.last_modified)))
        yield from self._orders(cursor)
        if self.settings.import_deletions and not skip_deletions:
            yield from list_deletions(self.client, self.party_id, cursor, self.wanted)
        yield Checkpoint(cursor=cursor.dump())

    # -- the queries -------------------------------------------------------------------------

    def _step(self) -> timedelta:
        """The width of a filter literal: a second, or a day on a server taking only dates."""
        return timedelta(days=1) if self.date_only else timedelta(seconds=1)

    def _floor(self, stamp: datetime) -> datetime:
        floored = stamp.replace(microsecond=0)
        return floored.replace(hour=0, minute=0, second=0) if self.date_only else floored

    def _literal(self, moment: datetime) -> str:
        return odata_datetime(moment, date_only=self.date_only)

    def _query(self, cursor: Cursor) -> dict[str, Any]:
        filters = base_filters(self.settings)
        window = parse_timestamp(cursor.window)
        if window is not None:
            start = self._floor(window)
            keyset = [f"LastModified ge {self._literal(start)}",
                      f"LastModified lt {self._literal(start + self._step())}"]
            if cursor.after is not None:
                keyset.append(f"OrderID gt {cursor.after}")
            filters[:0] = keyset
            order_by = WINDOW_ORDER_BY
        else:
            since = parse_timestamp(cursor.last_modified)
            if since is not None:
                filters.insert(0, f"LastModified ge {self._literal(since - self._lookback)}")
            order_by = ORDER_BY
        params: dict[str, Any] = {}
        if filters:
            params["$filter"] = " and ".join(filters)
        params["$orderby"] = order_by
        params["$top"] = self.settings.page_size
        return params

    def _get(self, cursor: Cursor) -> tuple[Any, dict[str, Any]]:
        """One page of a keyset query. Should the server refuse a ``DateTime`` with a time part
        (400), the documented date-only form is used from then on: more re-reading, nothing lost
        (a second being walked by OrderID widens to its whole day, walked from the start)."""
        query = self._query(cursor)
        try:
            return self.client.get_json(f"{ORDERS}?{encode_query(query)}", party_id=self.party_id), query
        except RemoteError as exc:
            if exc.status != 400 or self.date_only or "DateTime'" not in str(query.get("$filter")):
                raise
        self.log.warning("billit: company %s: Billit refused a DateTime with a time of day; filtering "
                         "on the date alone", self.party_id)
        self.date_only = True
        cursor.after = None
        query = self._query(cursor)
        return self.client.get_json(f"{ORDERS}?{encode_query(query)}", party_id=self.party_id), query

    # -- the walk ----------------------------------------------------------------------------

    def _orders(self, cursor: Cursor) -> Iterator[DocumentRef | ListingError | Checkpoint]:
        listed: set[tuple[int, datetime]] = set()  # (OrderID, LastModified) listed in this run
        while True:
            body, query = self._get(cursor)
            items, next_link = page_items(body)
            more = bool(next_link) or len(items) >= self.settings.page_size
            rows: list[Row] = []
            for item in items:
                key = self._key(item)
                if isinstance(key, ListingError):
                    # Reported (and the cursor held for it) only if it is a kind this account imports.
                    if (not isinstance(item, dict) or self.wanted(item)) and self._first_report(item):
                        yield key
                    continue
                rows.append(Row(*key, item))
            in_window = cursor.window is not None
            if in_window:
                fresh = yield from self._window_page(rows, cursor, listed, more)
            else:
                boundary = parse_timestamp(cursor.last_modified)
                reread_from = boundary - self._lookback if boundary is not None and self._lookback else None
                fresh = yield from self._main_page(rows, cursor, listed, more, reread_from)
            self._lookback = timedelta(0)  # only the run's first page looks back: later ones start at the cursor
            if items and (cursor.last_modified or cursor.window):
                yield Checkpoint(cursor=cursor.dump())
            if not more and not in_window:
                return  # a short page of `ge S` is the end; a short window page only ends its second
            if fresh == 0 and query == self._query(cursor):
                raise RemoteError(f"{ORDERS}: the next page would repeat the previous one ({query.get('$filter')}); "
                                  "the server does not honour the keyset filter", service=SERVICE)

    def _main_page(self, rows: list[Row], cursor: Cursor, listed: set[tuple[int, datetime]],
                   more: bool, reread_from: datetime | None = None) -> Generator[DocumentRef, None, int]:
        """``LastModified ge S`` pages: skip what the cursor covers, move it to the last order.
        With ``lookback_seconds``, what lies from ``reread_from`` up to the cursor is listed again
        (an order committed late with an earlier LastModified; the library dedupes the rest)."""
        boundary = start = parse_timestamp(cursor.last_modified)
        seen: set[int] = set(cursor.ids)  # OrderIDs already listed at the boundary instant
        fresh = 0
        for order_id, stamp, text, item in rows:
            if boundary is not None and stamp < boundary:
                if reread_from is None or stamp < reread_from or (order_id, stamp) in listed:
                    continue  # covered by the cursor (the filter floors to whole seconds)
                listed.add((order_id, stamp))
                fresh += 1
                if self.wanted(item):
                    yield DocumentRef(source_id=str(order_id), modified_at=localize(stamp, text), summary=item)
                continue
            if stamp == boundary and order_id in seen:
                continue
            if boundary is None or stamp > boundary:
                boundary, seen = stamp, set()
                cursor.last_modified = text
            seen.add(order_id)
            fresh += 1
            listed.add((order_id, stamp))
            if self.wanted(item):
                yield DocumentRef(source_id=str(order_id), modified_at=localize(stamp, text), summary=item)
        cursor.ids = sorted(seen)
        seconds = {self._floor(row.stamp) for row in rows}
        if more and len(seconds) == 1 and (start is None or min(seconds) >= self._floor(start)):
            # A full page inside one second: `ge S` would only return it again. Walk that
            # second by OrderID (what was listed of it already is in `listed`). A second before
            # the cursor (a lookback re-read) is not walked: the next page starts at the cursor.
            cursor.window, cursor.after = wire_timestamp(seconds.pop()), None
        return fresh

    def _window_page(self, rows: list[Row], cursor: Cursor, listed: set[tuple[int, datetime]],
                     more: bool) -> Generator[DocumentRef, None, int]:
        """``ge S and lt S+1s and OrderID gt X`` pages, in OrderID order."""
        fresh = 0
        highest = cursor.after
        for order_id, stamp, text, item in rows:
            if highest is None or order_id > highest:
                highest = order_id
                fresh += 1
            if (order_id, stamp) in listed:
                continue  # listed by an earlier page of this run, before the walk began
            listed.add((order_id, stamp))
            if self.wanted(item):
                yield DocumentRef(source_id=str(order_id), modified_at=localize(stamp, text), summary=item)
        cursor.after = highest
        if not more:  # the second is done: go on after it
            start = parse_timestamp(cursor.window)
            assert start is not None
            cursor.last_modified = wire_timestamp(self._floor(start) + self._step())
            cursor.ids, cursor.window, cursor.after = [], None, None
            fresh += 1
        return fresh

    def _first_report(self, item: Any) -> bool:
        fingerprint = json.dumps(item, sort_keys=True, default=str)
        if fingerprint in self._reported:
            return False
        self._reported.add(fingerprint)
        return True

    def _key(self, item: Any) -> tuple[int, datetime, str] | ListingError:
        """``(OrderID, LastModified, its text)``, or a ``ListingError`` naming the unusable field:
        core records it, and holds the cursor before it so the order is listed again."""
        if not isinstance(item, dict):
            return ListingError(field="Items", message=f"a listed order is not a JSON object but "
                                                       f"{type(item).__name__}")
        number = item.get("OrderNumber")
        label = f" (OrderNumber {str(number)[:80]!r})" if number is not None else ""
        order_id = item.get("OrderID")
        if order_id is None:
            return ListingError(field="OrderID", message=f"a listed order has no OrderID{label}")
        if not _is_int32(order_id):
            return ListingError(source_id=_shown_id(order_id), field="OrderID",
                                message=f"OrderID must be a 32-bit integer, got {_shown(order_id)}{label}")
        text = item.get("LastModified")
        stamp = parse_timestamp(text)
        if stamp is None:
            return ListingError(source_id=str(order_id), field="LastModified",
                                message=f"order {order_id}{label}: LastModified must be a date-time like "
                                        f"2025-04-25T16:22:25.457, got {_shown(text)}")
        return int(order_id), stamp, str(text)

    def wanted(self, item: dict[str, Any]) -> bool:
        kind, direction = item.get("OrderType"), item.get("OrderDirection")
        # An unknown or missing value is imported: fetch_document reports it by field.
        if kind in ("Invoice", "CreditNote", "Offer", "DeliveryNote", "OrderForm") \
                and kind not in self.settings.order_types:
            return False
        return not (direction in ("Income", "Cost") and direction not in self.settings.directions)


def _is_int32(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and INT32[0] <= value <= INT32[1]


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _shown_id(value: Any) -> str | None:
    """A wrong-typed OrderID as an id core can hold the failure under (``"123"``), if it has one."""
    text = str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    return text[:40] or None
