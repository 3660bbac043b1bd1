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
and the cursor would then move past it for good. So each page is a fresh keyset query from the
last instant seen (``ge`` that instant, skipping the ids already listed), which no edit can
shift. ``NextPageLink`` is followed only when a whole page shares one instant (a bulk import),
the one case a keyset on ``LastModified`` cannot step over; the end of the list is where Billit
stops giving a ``NextPageLink``. Sorting by ``LastModified asc, OrderID asc`` makes the order
of equal instants stable.

Only documented, whitelisted filter properties are used (``LastModified``, ``OrderType``,
``OrderDirection``); OData ``or`` is not documented, so several wanted types are filtered here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from invoicesync import Checkpoint, Deletion, DocumentRef, RemoteError

from .client import SERVICE, BillitClient
from .settings import BillitSettings

ORDERS = "/v1/orders"
DELETED = "/v1/orders/deleted"
ORDER_BY = "LastModified asc,OrderID asc"
#: At most this many boundary ids ride in the cursor (more only after a huge bulk import).
MAX_CURSOR_IDS = 500

try:
    BILLIT_TZ: ZoneInfo | None = ZoneInfo("Europe/Brussels")
except ZoneInfoNotFoundError:  # no tz database: keep Billit's naive local time
    BILLIT_TZ = None


def parse_timestamp(value: Any) -> datetime | None:
    """Billit's ``2024-03-10T15:00:49.72`` (no offset, 0-7 fraction digits) as a datetime."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if "." in text:  # Python wants exactly 3 or 6 fraction digits before 3.11's relaxed parser
        head, _, frac = text.partition(".")
        digits = "".join(ch for ch in frac if ch.isdigit())
        tail = frac[len(digits):]
        text = f"{head}.{(digits + '000000')[:6]}{tail}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.replace(tzinfo=None)


def localize(value: datetime | None) -> datetime | None:
    """Billit's naive local time, made aware (Belgian time) for the library."""
    if value is None or BILLIT_TZ is None:
        return value
    return value.replace(tzinfo=BILLIT_TZ)


def odata_datetime(value: datetime) -> str:
    """An OData v3 literal, millisecond precision like Billit's own timestamps."""
    return "DateTime'" + value.isoformat(timespec="milliseconds") + "'"


@dataclass
class Cursor:
    last_modified: str | None = None
    ids: list[int] = field(default_factory=list)
    deleted_since: str | None = None
    deleted_ids: list[int] = field(default_factory=list)  # deletions reported at that instant

    @classmethod
    def parse(cls, text: str | None) -> Cursor:
        if not text:
            return cls()
        try:
            data = json.loads(text)
        except ValueError:
            return cls(last_modified=text)  # a bare timestamp (hand-set cursor)
        if not isinstance(data, dict):
            return cls()
        ids = [i for i in data.get("ids") or [] if isinstance(i, int)]
        deleted_ids = [i for i in data.get("dids") or [] if isinstance(i, int)]
        return cls(data.get("lm"), ids, data.get("del"), deleted_ids)

    def dump(self) -> str:
        data: dict[str, Any] = {"lm": self.last_modified}
        if self.ids and len(self.ids) <= MAX_CURSOR_IDS:
            data["ids"] = sorted(self.ids)
        if self.deleted_since:
            data["del"] = self.deleted_since
            if self.deleted_ids and len(self.deleted_ids) <= MAX_CURSOR_IDS:
                data["dids"] = sorted(self.deleted_ids)
        return json.dumps(data, separators=(",", ":"))


def base_filters(settings: BillitSettings) -> list[str]:
    filters = []
    if len(settings.order_types) == 1:
        filters.append(f"OrderType eq '{settings.order_types[0]}'")
    if len(settings.directions) == 1:
        filters.append(f"OrderDirection eq '{settings.directions[0]}'")
    return filters


def page_items(body: Any) -> tuple[list[Any], str | None]:
    """``{"Items": [...], "NextPageLink": ...}`` (what Billit sends), or a bare array."""
    if isinstance(body, list):
        return body, None
    if isinstance(body, dict) and isinstance(body.get("Items"), list):
        link = body.get("NextPageLink")
        return body["Items"], link if isinstance(link, str) and link else None
    raise RemoteError(f"{ORDERS}: expected {{'Items': [...]}}, got {type(body).__name__}", service=SERVICE)


class OrderLister:
    """Yields one company's changed orders, deletions and checkpoints in cursor order."""

    def __init__(self, client: BillitClient, settings: BillitSettings, party_id: str,
                 log: logging.Logger) -> None:
        self.client = client
        self.settings = settings
        self.party_id = party_id
        self.log = log

    def changes(self, cursor_text: str | None) -> Iterator[DocumentRef | Deletion | Checkpoint]:
        cursor = Cursor.parse(cursor_text)
        yield from self._orders(cursor)
        if self.settings.import_deletions:
            yield from self._deletions(cursor)
        yield Checkpoint(cursor=cursor.dump())

    # -- orders ------------------------------------------------------------------------------

    def _query(self, since: str | None) -> dict[str, Any]:
        filters = base_filters(self.settings)
        start = parse_timestamp(since) if since else None
        if start is not None:
            start -= timedelta(seconds=self.settings.lookback_seconds)
            filters.insert(0, f"LastModified ge {odata_datetime(start)}")
        params: dict[str, Any] = {"$orderby": ORDER_BY, "$top": self.settings.page_size}
        if filters:
            params["$filter"] = " and ".join(filters)
        return params

    def _orders(self, cursor: Cursor) -> Iterator[DocumentRef | Checkpoint]:
        boundary = parse_timestamp(cursor.last_modified)
        seen: set[int] = set(cursor.ids)  # OrderIDs already listed at the boundary instant
        request: tuple[str, dict[str, Any] | None] = (ORDERS, self._query(cursor.last_modified))
        while True:
            body = self.client.get_json(request[0], party_id=self.party_id, params=request[1])
            items, next_link = page_items(body)
            fresh = 0  # orders this page added; a page that adds none cannot be keyset-requeried
            for item in items:
                order_id, stamp, text = self._key(item)
                if order_id is None:
                    continue
                if stamp is not None and boundary is not None and stamp < boundary:
                    continue  # only with lookback: older than the cursor, already covered
                if stamp is not None and stamp == boundary:
                    if order_id in seen:
                        continue
                elif stamp is not None:
                    boundary, seen = stamp, set()
                    cursor.last_modified = text
                seen.add(order_id)
                fresh += 1
                if self._wanted(item):
                    yield DocumentRef(source_id=str(order_id), modified_at=localize(stamp), summary=item)
            cursor.ids = sorted(seen)
            if items and cursor.last_modified:
                yield Checkpoint(cursor=cursor.dump())
            if not next_link:
                return
            if fresh == 0 or len(seen) >= self.settings.page_size:
                request = (next_link, None)  # a whole page at one instant: only $skip gets past it
            else:
                request = (ORDERS, self._query(cursor.last_modified))

    def _key(self, item: Any) -> tuple[int | None, datetime | None, str | None]:
        if not isinstance(item, dict) or isinstance(item.get("OrderID"), bool) \
                or not isinstance(item.get("OrderID"), int):
            number = item.get("OrderNumber") if isinstance(item, dict) else None
            self.log.error("billit: company %s: a listed order has no valid OrderID (OrderNumber %r); "
                           "it cannot be imported until Billit lists it correctly", self.party_id, number)
            return None, None, None
        text = item.get("LastModified")
        stamp = parse_timestamp(text)
        if stamp is None:
            # Still import it (its fetch names the broken field), but it cannot move the cursor.
            self.log.warning("billit: order %s has an unreadable LastModified %r", item["OrderID"], text)
            return int(item["OrderID"]), None, None
        return int(item["OrderID"]), stamp, str(text)

    def _wanted(self, item: dict[str, Any]) -> bool:
        kind, direction = item.get("OrderType"), item.get("OrderDirection")
        # An unknown or missing value is imported: fetch_document reports it by field.
        if kind in ("Invoice", "CreditNote", "Offer", "DeliveryNote", "OrderForm") \
                and kind not in self.settings.order_types:
            return False
        return not (direction in ("Income", "Cost") and direction not in self.settings.directions)

    # -- deletions ---------------------------------------------------------------------------

    def _deletions(self, cursor: Cursor) -> Iterator[Deletion]:
        """``GET /v1/orders/deleted``: soft-deleted orders. Its answer is not specified, so
        both a page envelope and a bare array, of objects or of bare ids, are understood."""
        since = parse_timestamp(cursor.deleted_since)
        newest = since
        at_newest = set(cursor.deleted_ids)
        request: tuple[str, dict[str, Any] | None] | None = (DELETED, None)
        pages = 0
        while request is not None and pages < 10_000:
            pages += 1
            body = self.client.get_json(request[0], party_id=self.party_id, params=request[1])
            items, next_link = page_items(body)
            for item in items:
                order_id: Any = item.get("OrderID") if isinstance(item, dict) else item
                if isinstance(order_id, bool) or not isinstance(order_id, int):
                    continue
                stamp = parse_timestamp(item.get("LastModified")) if isinstance(item, dict) else None
                if stamp is not None and since is not None and (
                        stamp < since or (stamp == since and order_id in cursor.deleted_ids)):
                    continue  # reported by an earlier run
                if stamp is not None and (newest is None or stamp > newest):
                    newest, at_newest = stamp, set()
                    cursor.deleted_since = str(item["LastModified"])
                if stamp is not None and stamp == newest:
                    at_newest.add(order_id)
                if isinstance(item, dict) and not self._wanted(item):
                    continue
                yield Deletion(source_id=str(order_id), deleted_at=localize(stamp))
            request = (next_link, None) if next_link else None
        cursor.deleted_ids = sorted(at_newest)
