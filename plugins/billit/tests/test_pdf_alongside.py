"""The PDF named by the listing is downloaded while the order's detail is read, and only kept if
the detail names the same file; the client lives in the run's resources."""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import pytest
from invoicesync.sandbox import Request
from invoicesync_billit.plugin import client_for


def rendered_sha(h: Any, file_id: str) -> str:
    return hashlib.sha256(b"".join(h.app.files[file_id].render())).hexdigest()


def test_the_pdf_download_and_the_order_detail_are_in_flight_together(billit: Any) -> None:
    h = billit(documents=3, companies=1)
    h.connect()
    ref = h.list().refs[0]
    pdf_id = ref.summary["OrderPDF"]["FileID"]
    arrived = {"detail": threading.Event(), "pdf": threading.Event()}
    other_was_in_flight: dict[str, bool] = {}

    def hold(request: Request) -> None:
        """Each of the two waits (a while) for the other to arrive before it is answered."""
        kind = {f"/v1/orders/{ref.source_id}": "detail", f"/v1/files/{pdf_id}": "pdf"}.get(request.path)
        if kind is None:
            return
        arrived[kind].set()
        other = "pdf" if kind == "detail" else "detail"
        other_was_in_flight[kind] = arrived[other].wait(timeout=5)

    h.app.arrival_hooks.append(hold)
    ctx = h.context()
    try:
        document = h.call("fetch_document", ctx, company=h.company, ref=ref)
    finally:
        ctx.close()
    assert other_was_in_flight == {"detail": True, "pdf": True}
    assert document.pdf is not None and document.pdf.source_id == pdf_id
    assert document.pdf.sha256 == rendered_sha(h, pdf_id)
    assert h.app.count("GET", f"^/v1/files/{pdf_id}$") == 1  # downloaded once, not again after the detail


@pytest.mark.parametrize("stale_still_served", [True, False], ids=["old-file-served", "old-file-gone"])
def test_a_pdf_regenerated_between_list_and_detail_imports_the_details_file(
        billit: Any, stale_still_served: bool) -> None:
    h = billit(documents=3, companies=1)
    h.connect()
    ref = h.list().refs[0]
    listed_id = ref.summary["OrderPDF"]["FileID"]
    stale = h.app.files[listed_id]
    # Edited in Billit after the listing: the PDF is rendered again under a new FileID.
    order = h.app.edit_order(int(ref.source_id), OrderNumber=f"{ref.summary['OrderNumber']}-B")
    new_id = order["OrderPDF"]["FileID"]
    assert new_id != listed_id
    if stale_still_served:
        h.app.files[listed_id] = stale
        assert rendered_sha(h, listed_id) != rendered_sha(h, new_id)
    ctx = h.context()
    try:
        document = h.call("fetch_document", ctx, company=h.company, ref=ref)
    finally:
        ctx.close()
    assert h.app.count("GET", f"^/v1/files/{listed_id}$") == 1  # the early download of the listed file
    assert document.pdf is not None and document.pdf.source_id == new_id
    assert document.pdf.sha256 == rendered_sha(h, new_id)
    assert document.number.endswith("-B")


def test_a_listed_pdf_id_that_is_not_a_uuid_waits_for_the_detail(billit: Any) -> None:
    h = billit(documents=3, companies=1)
    h.connect()
    ref = h.list().refs[0]
    pdf_id = ref.summary["OrderPDF"]["FileID"]
    odd = ref.model_copy(update={"summary": {**ref.summary, "OrderPDF": {"FileID": "not-a-uuid"}}})
    ctx = h.context()
    try:
        document = h.call("fetch_document", ctx, company=h.company, ref=odd)
    finally:
        ctx.close()
    assert document.pdf is not None and document.pdf.source_id == pdf_id
    assert h.app.count("GET", r"^/v1/files/not-a-uuid$") == 0


def test_the_client_is_a_run_resource_shared_by_the_run_and_closed_with_it(billit: Any) -> None:
    h = billit(documents=1, companies=1)
    ctx, other = h.context(), h.context()
    first = client_for(ctx)
    assert client_for(ctx) is first
    assert client_for(other) is not first
    ctx.close()
    assert client_for(ctx) is not first  # a context used again after its run ends starts afresh
    ctx.close()
    other.close()
