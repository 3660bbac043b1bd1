"""Soft-deleted orders: ``GET /v1/orders/deleted``, reported as ``Deletion``s.

Its answer is not specified, so both a page envelope and a bare array, of objects or of bare
ids, are understood. Its pages are walked by ``NextPageLink``; a link that points back to a page
already read (a server bug seen as a loop) fails the company instead of looping for ever.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from invoicesync import Deletion, RemoteError

from .client import SERVICE, BillitClient
from .wire import Cursor, as_int_id, localize, page_items, parse_timestamp, repeated_hour

DELETED = "/v1/orders/deleted"
MAX_PAGES = 10_000


def list_deletions(client: BillitClient, party_id: str, cursor: Cursor,
                   wanted: Callable[[dict[str, Any]], bool]) -> Iterator[Deletion]:
    """The deletions newer than the cursor's; moves ``cursor.deleted_since`` / ``deleted_ids``."""
    since = parse_timestamp(cursor.deleted_since)
    newest = since
    # A cursor in a DST fall-back's repeated hour: deletions stamped up to that hour before it may
    # be new (reported again, a deletion changes nothing).
    reread_from = since - repeated_hour(since) if since is not None else None
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
            if stamp is not None and since is not None and reread_from is not None and (
                    stamp < reread_from or (stamp == since and order_id in cursor.deleted_ids)):
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
