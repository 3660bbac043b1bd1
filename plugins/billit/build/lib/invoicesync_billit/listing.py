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
shift. An offset is used only when a page brought nothing new (a bulk import sharing one
instant, the one case a keyset on ``LastModified`` cannot step over): the ``NextPageLink``
(absolute or relative, see ``BillitClient.follow``), or ``$skip`` on the same query when the
answer has no link (the Swagger declares a bare array). The listing ends on a page with no
``NextPageLink`` that is not full. Sorting by ``LastModified asc, OrderID asc`` makes the order
of equal instants stable.

Only documented, whitelisted filter properties are used (``LastModified``, ``OrderType``,
``OrderDirection``); OData ``or`` is not documented, so several wanted types are filtered here.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
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


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if "." in text:  # Python wants exactly 3 or 6 fraction digits before 3.11's relaxed parser
        head, _, frac = text.partition(".")
        digits = "".join(ch for ch in frac if ch.isdigit())
        tail = frac[len(digits):]
        text = f"{head}.{(digits + '000000')[:6]}{tail}"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def parse_timestamp(value: Any) -> datetime | None:
    """Billit's ``2024-03-10T15:00:49.72`` (no offset, 0-7 fraction digits) as a naive datetime,
    on Billit's own clock: the cursor compares and filters on exactly what Billit wrote (an
    offset, should one ever come, is dropped rather than converted, so a filter built from it
    still names the instant as the server wrote it)."""
    parsed = _parse(value)
    return parsed.replace(tzinfo=None) if parsed is not None else None


def localize(value: datetime | None, text: Any = None) -> datetime | None:
    """An aware instant for the library: Billit's offset-free local time is Belgian time; a
    timestamp that does carry an offset (``Z``, ``+01:00``) keeps it."""
    explicit = _parse(text)
    if explicit is not None and explicit.tzinfo is not None:
        return explicit
    if value is None or BILLIT_TZ is None:
        return value
    return value.replace(tzinfo=BILLIT_TZ)


def odata_datetime(value: datetime, *, date_only: bool = False) -> str:
    """An OData v3 ``DateTime'...'`` literal: no offset (Billit's timestamps have none, and OData
    v3 ``DateTime`` is offset-free; ``+01:00`` would even turn into a space in a query), whole
    seconds (floored). Billit's docs only show ``DateTime'2025-04-01'``; a time part is standard
    OData v3, and whole seconds are the form every DateTime parser reads. Flooring only re-reads a
    few orders of that second, which the cursor skips. ``date_only`` is the fallback for a server
    that takes nothing but the documented date form."""
    if date_only:
        return f"DateTime'{value.date().isoformat()}'"
    return "DateTime'" + value.replace(microsecond=0, tzinfo=None).isoformat(timespec="seconds") + "'"


SAFE_IN_QUERY = "$',:/()"


def encode_query(params: dict[str, Any]) -> str:
    """The query string as Billit's docs write it: ``$filter=OrderType+eq+'Invoice'`` (``$``,
    quotes, commas and colons literal, spaces as ``+``), rather than ``%24filter=...%27``."""
    return "&".join(f"{urllib.parse.quote_plus(str(k), safe='$')}="
                    f"{urllib.parse.quote_plus(str(v), safe=SAFE_IN_QUERY)}" for k, v in params.items())



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


ITEMS_KEYS = ("Items", "items", "value", "Value")
NEXT_KEYS = ("NextPageLink", "nextPageLink", "odata.nextLink", "@odata.nextLink", "__next")


def page_items(body: Any) -> tuple[list[Any], str | None]:
    """A page of ``GET /v1/orders``: ``{"Items": [...], "NextPageLink": ..., "Count": ...}`` is what
    Billit's docs and clients show; its Swagger declares a bare array. Both are read (and the
    OData spellings ``value`` / ``odata.nextLink``, should a server use them)."""
    if isinstance(body, list):
        return body, None
    if isinstance(body, dict):
        for key in ITEMS_KEYS:
            if isinstance(body.get(key), list):
                links = [body.get(k) for k in NEXT_KEYS]
                link = next((v for v in links if isinstance(v, str) and v.strip()), None)
                return body[key], link
    raise RemoteError(f"{ORDERS}: expected {{'Items': [...]}} or an array, got {type(body).__name__}",
                      service=SERVICE)


def as_int_id(value: Any) -> int | None:
    """An OrderID or PartyID: an int32 per the Swagger; a string of digits is read too."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


class OrderLister:
    """Yields one company's changed orders, deletions and checkpoints in cursor order."""

    def __init__(self, client: BillitClient, settings: BillitSettings, party_id: str,
                 log: logging.Logger) -> None:
        self.client = client
        self.settings = settings
        self.party_id = party_id
        self.log = log
        self.date_only = False  # set when the server refuses a DateTime with a time of day

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
            filters.insert(0, f"LastModified ge {odata_datetime(start, date_only=self.date_only)}")
        params: dict[str, Any] = {}
        if filters:
            params["$filter"] = " and ".join(filters)
        params["$orderby"] = ORDER_BY
        params["$top"] = self.settings.page_size
        return params

    def _get(self, query: dict[str, Any] | None, link: str | None) -> tuple[Any, str]:
        url = link or f"{ORDERS}?{encode_query(query or {})}"
        return self.client.get_page(url, party_id=self.party_id)

    def _first_page(self, query: dict[str, Any], since: str | None) -> tuple[Any, str, dict[str, Any]]:
        """A keyset query. Should the server refuse a ``DateTime`` with a time part (400), the
        documented date-only form is used from then on: more re-reading, nothing lost."""
        try:
            body, url = self._get(query, None)
            return body, url, query
        except RemoteError as exc:
            if exc.status != 400 or self.date_only or "DateTime'" not in str(query.get("$filter")):
                raise
        self.log.warning("billit: company %s: Billit refused a DateTime with a time of day; filtering "
                         "on the date alone", self.party_id)
        self.date_only = True
        query = self._query(since)
        body, url = self._get(query, None)
        return body, url, query

    def _orders(self, cursor: Cursor) -> Iterator[DocumentRef | Checkpoint]:
        boundary = parse_timestamp(cursor.last_modified)
        seen: set[int] = set(cursor.ids)  # OrderIDs already listed at the boundary instant
        body, came_from, query = self._first_page(self._query(cursor.last_modified), cursor.last_modified)
        offset = 0  # how far into the current keyset query the pages so far reached
        previous_page: list[int] | None = None
        while True:
            items, next_link = page_items(body)
            fresh = 0  # orders this page added; a page that adds none cannot be keyset-requeried
            page_ids = []
            for item in items:
                order_id, stamp, text = self._key(item)
                if order_id is None:
                    continue
                page_ids.append(order_id)
                if stamp is not None and boundary is not None and stamp < boundary:
                    continue  # already covered: lookback, or the filter's whole-second floor
                if stamp is not None and stamp == boundary:
                    if order_id in seen:
                        continue
                elif stamp is not None:
                    boundary, seen = stamp, set()
                    cursor.last_modified = text
                seen.add(order_id)
                fresh += 1
                if self._wanted(item):
                    yield DocumentRef(source_id=str(order_id), modified_at=localize(stamp, text), summary=item)
            cursor.ids = sorted(seen)
            if items and cursor.last_modified:
                yield Checkpoint(cursor=cursor.dump())
            offset += len(items)
            # Billit gives a NextPageLink while records are left. A page without one that is
            # full (a bare array, as the Swagger declares, carries no link at all) may still
            # have a successor: ask again; an empty answer ends the listing.
            if not next_link and len(items) < self.settings.page_size:
                return
            if fresh == 0 or len(seen) >= self.settings.page_size:
                # Only an offset gets past a page that brought nothing new (a bulk import at
                # one instant): the NextPageLink, or $skip on the same query.
                if fresh == 0 and previous_page == page_ids:
                    raise RemoteError(f"{ORDERS}: the next page repeats the previous one; the server "
                                      "does not page ($skip / NextPageLink)", service=SERVICE)
                previous_page = page_ids
                if next_link:
                    body, came_from = self._get(None, self.client.follow(next_link, came_from))
                else:
                    body, came_from = self._get({**query, "$skip": offset}, None)
            else:
                previous_page, offset = None, 0
                query = self._query(cursor.last_modified)
                body, came_from = self._get(query, None)

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
        url: str | None = DELETED
        pages = 0
        while url is not None and pages < 10_000:
            pages += 1
            body, came_from = self.client.get_page(url, party_id=self.party_id)
            items, next_link = page_items(body)
            for item in items:
                order_id = as_int_id(item.get("OrderID") if isinstance(item, dict) else item)
                if order_id is None:
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
                yield Deletion(source_id=str(order_id), deleted_at=localize(
                    stamp, item.get("LastModified") if isinstance(item, dict) else None))
            url = self.client.follow(next_link, came_from) if next_link else None
        cursor.deleted_ids = sorted(at_newest)
