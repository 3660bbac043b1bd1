"""Soft-deleted orders: ``GET /v1/orders/deleted``, reported as ``Deletion``s.

Its answer is not specified, so both a page envelope and a bare array, of objects or of bare
ids, are understood. Its pages are walked by ``NextPageLink``; a link that points back to a page
already read (a server bug seen as a loop) fails the company instead of looping for ever.

A company's first sync does not list deletions at all: its library holds nothing yet that could
have been deleted, and an order deleted before the sync is not in ``/v1/orders`` either. It only
stores where the next run's listing starts (``first_sync_since``), one request saved per company.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

from invoicesync import Deletion, RemoteError

from .client import SERVICE, BillitClient
from .wire import BILLIT_TZ, Cursor, as_int_id, localize, page_items, parse_timestamp, wire_timestamp

DELETED = "/v1/orders/deleted"
MAX_PAGES = 10_000
#: How far before a first sync's start its deletion cursor is set. Billit stamps on its own clock,
#: in offset-free Belgian time, which ours may not match (skew; a server on another zone's clock):
#: an hour early covers both. Too early costs nothing: a deletion of an order the library never
#: got is a no-op. Too late would lose one, so the margin errs early.
FIRST_SYNC_MARGIN = timedelta(hours=1)


def first_sync_since(now: datetime | None = None) -> str:
    """The deletion cursor of a company's first sync, taken as it starts: the next run reports
    every deletion stamped from (a margin before) then, which covers all orders this one imports."""
    moment = now or datetime.now().astimezone()
    naive = [moment.replace(tzinfo=None)]  # the machine's local clock
    if BILLIT_TZ is not None:
        naive.append(moment.astimezone(BILLIT_TZ).replace(tzinfo=None))  # Billit's Belgian clock
    return wire_timestamp(min(naive) - FIRST_SYNC_MARGIN)


def list_deletions(client: BillitClient, party_id: str, cursor: Cursor,
                   wanted: Callable[[dict[str, Any]], bool]) -> Iterator[Deletion]:
    """The deletions newer than the cursor's; moves ``cursor.deleted_since`` / ``deleted_ids``."""
    since = parse_timestamp(cursor.deleted_since)
    newest = since
    at_newest = set(cursor.deleted_ids)
    url: str | None = DELETED
    followed: set[str] = set()
    while url is not None:
        where = client.follow(url, client.settings.api_base() + "/")  # one spelling per page
        if where in followed or len(followed) >= MAX_PAGES:
            raise RemoteError(f"{DELETED}: its NextPageLink points back to a page already read ({where}) "
                              f"for company {party_id}; the listing stops here rather than loop",
                              service=SERVICE)
        followed.add(where)
        body, came_from = client.get_page(url, party_id=party_id)
        items, next_link = page_items(body)
        for item in items:
            order_id = as_int_id(item.get("OrderID") if isinstance(item, dict) else item)
            if order_id is None:
                continue
            text = item.get("LastModified") if isinstance(item, dict) else None
            stamp = parse_timestamp(text)
            if stamp is not None and since is not None and (
                    stamp < since or (stamp == since and order_id in cursor.deleted_ids)):
                continue  # reported by an earlier run
            if stamp is not None and (newest is None or stamp > newest):
                newest, at_newest = stamp, set()
                cursor.deleted_since = str(text)
            if stamp is not None and stamp == newest:
                at_newest.add(order_id)
            if isinstance(item, dict) and not wanted(item):
                continue
            yield Deletion(source_id=str(order_id), deleted_at=localize(stamp, text))
        url = client.follow(next_link, came_from) if next_link else None
    cursor.deleted_ids = sorted(at_newest)
