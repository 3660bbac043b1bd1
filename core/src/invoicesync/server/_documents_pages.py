"""Documents: the library a page at a time (keyset in SQL), its filters, one document and its files."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from ..models import AccountDirection, DeliveryStatus, Direction, DocumentKind, FileRole
from ..state import DocumentFilter
from ..workspace import Workspace

PAGE_SIZE = 50
#: Matches of a filter are counted up to this many ("More than 1,000 documents match"), so a page
#: never counts through a whole big library; the unfiltered library is counted exactly.
COUNT_CAP = 1_000
FILTERS = ("account", "company", "direction", "kind", "since", "until", "target", "status", "q", "deleted")
STATUSES = [s.value for s in DeliveryStatus if s is not DeliveryStatus.PLANNED] + ["undelivered"]


def _date(text: str) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def parse_filters(params: dict[str, str], targets: list[str]) -> tuple[DocumentFilter, str]:
    """The library filter and the search text from the query string; unknown values are ignored."""
    status = params.get("status") or None
    target = params.get("target") or ""
    chosen = (target,) if target in targets else tuple(targets)
    return DocumentFilter(
        account=params.get("account") or None, company=params.get("company") or None,
        direction=params.get("direction") if params.get("direction") in {d.value for d in Direction} else None,
        kind=params.get("kind") if params.get("kind") in {k.value for k in DocumentKind} else None,
        since=_date(params.get("since", "")), until=_date(params.get("until", "")),
        include_deleted=params.get("deleted") != "hide",
        status=status if status in STATUSES else None, targets=chosen,
    ), params.get("q", "")


def routes(workspace: Workspace, render: Callable[..., Response]) -> list[Route]:
    def targets() -> list[str]:
        return [a.name for a in workspace.accounts() if a.direction is AccountDirection.EXPORT]

    async def documents(request: Request) -> Response:
        params = {k: request.query_params.get(k, "") for k in FILTERS}
        filters, text = parse_filters(params, targets())
        before = request.query_params.get("before", "")
        page = workspace.state.library_page(filters, text=text, before=int(before) if before.isdigit() else None,
                                            limit=PAGE_SIZE, count_cap=COUNT_CAP)
        kept = {k: v for k, v in params.items() if v}
        accounts = workspace.accounts()
        return render(request, "documents.html", {
            "page": page, "params": params, "targets": targets(), "statuses": STATUSES,
            "sources": [a.name for a in accounts if a.direction is AccountDirection.IMPORT],
            "companies": sorted({(c.id, c.name) for a in accounts for c in a.companies
                                 if a.direction is AccountDirection.IMPORT}),
            "directions": [d.value for d in Direction], "kinds": [k.value for k in DocumentKind],
            "next_url": f"/documents?{urlencode({**kept, 'before': page.next_before})}" if page.next_before else None,
            "first_url": f"/documents?{urlencode(kept)}" if before else None,
            "filtered": bool(kept),
        })

    async def document(request: Request) -> Response:
        document_id = request.query_params.get("id", "")
        doc = workspace.state.get_document(document_id)
        if doc is None:
            return render(request, "missing.html", {"what": "document"}, status_code=404)
        return render(request, "document.html", {
            "doc": doc, "deliveries": workspace.state.deliveries_for(doc.id),
            "history": workspace.state.delivery_log(doc.id),
            "file_url": lambda f, inline=False: "/document/file?" + urlencode(
                {"id": doc.id, "sha": f.sha256, **({"inline": 1} if inline else {})}),
        })

    async def document_file(request: Request) -> Response:
        doc = workspace.state.get_document(request.query_params.get("id", ""))
        sha = request.query_params.get("sha", "")
        ref = next((f for f in doc.files if f.sha256 == sha), None) if doc else None
        if ref is None or not workspace.blobs.exists(ref.sha256):
            return PlainTextResponse("no such file", status_code=404)
        # Only a PDF is shown in the page; anything else is a download of opaque bytes, so a file a
        # source delivered can never run as HTML or script in the dashboard's origin.
        inline = request.query_params.get("inline") == "1" and ref.role is FileRole.PDF \
            and ref.media_type == "application/pdf"
        headers: dict[str, Any] = {
            "Content-Disposition": f"{'inline' if inline else 'attachment'}; filename*=UTF-8''{_quote(ref.name)}",
            "Content-Length": str(ref.size), "X-Content-Type-Options": "nosniff",
        }
        return StreamingResponse(workspace.blobs.iter_chunks(ref.sha256), headers=headers,
                                 media_type="application/pdf" if inline else "application/octet-stream")

    return [
        Route("/documents", documents, methods=["GET"]),
        Route("/document", document, methods=["GET"]),
        Route("/document/file", document_file, methods=["GET"]),
    ]


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")
