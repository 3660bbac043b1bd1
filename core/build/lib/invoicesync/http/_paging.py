"""Paging helpers: follow a service's "next" pointer until it runs out."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from ._client import HttpClient

#: Given a page's JSON body, the next request as ``(url, params)``, or ``None`` at the end.
NextPage = Callable[[Any], tuple[str, dict[str, Any] | None] | None]


def iter_pages(
    client: HttpClient,
    url: str,
    *,
    params: dict[str, Any] | None = None,
    next_page: NextPage,
    max_pages: int = 100_000,
) -> Iterator[Any]:
    """Yield each page's JSON body. Stops at the end, or on a loop (a next link seen before)."""
    seen: set[str] = set()
    request: tuple[str, dict[str, Any] | None] | None = (url, params)
    for _ in range(max_pages):
        if request is None:
            return
        page_url, page_params = request
        key = f"{page_url}?{sorted((page_params or {}).items())}"
        if key in seen:
            raise RuntimeError(f"{client.service}: paging loops back to {page_url}")
        seen.add(key)
        body = client.get(page_url, params=page_params).json()
        yield body
        request = next_page(body)


def next_link(field: str) -> NextPage:
    """Follow an absolute or relative link in ``field`` (OData ``@odata.nextLink``, Billit ``NextPageLink``)."""

    def follow(body: Any) -> tuple[str, dict[str, Any] | None] | None:
        link = body.get(field) if isinstance(body, dict) else None
        return (link, None) if link else None

    return follow
