"""A streaming push keeps no document in memory while the plugin holds it: a target that gathers
many documents before it reports (Dropbox commits up to 1,000 files at once) costs the core a
few small fields per document, not the document."""

from __future__ import annotations

import queue
import threading
import tracemalloc
from datetime import date
from decimal import Decimal
from typing import Any

from invoicesync import Document, FileRef, FileRole, PushRequest
from invoicesync.models import Company, Direction, Party
from invoicesync.pipeline._stream import PushStream

N = 300


class _Workers:
    """What ``PushStream`` uses of ``TargetWorkers`` to hand documents out."""

    def __init__(self) -> None:
        self._queue: queue.Queue[object] = queue.Queue()
        self._closing = threading.Event()
        self.control = type("Control", (), {"stopping": False})()

    def _prepare(self, document: Document) -> PushRequest:
        return PushRequest(document=document)


def _document(n: int) -> Document:
    files = [FileRef(name=f"INV-{n}.pdf", media_type="application/pdf", size=1234 + n, sha256=f"{n:064x}",
                     role=FileRole.PDF)]
    return Document(id=Document.make_id("memory", "src", "c1", f"INV-{n}"), source="memory", account="src",
                    company=Company(id="c1", name="Acme BV"), source_id=f"INV-{n}", direction=Direction.PURCHASE,
                    number=f"INV-{n:05d}", issue_date=date(2026, 1, 15), amount_incl_vat=Decimal("121.00"),
                    counterparty=Party(name=f"Supplier {n} NV", vat_number=f"BE0{n:09d}"), files=files)


def test_documents_handed_to_the_plugin_are_not_held_by_the_core() -> None:
    workers: Any = _Workers()
    done = object()
    texts = [_document(n).model_dump_json() for n in range(N)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for text in texts:  # the queue holds the documents until the stream hands them out
            workers._queue.put(Document.model_validate_json(text))
        workers._queue.put(done)
        stream = PushStream(workers, workers._queue.get(), done)
        ids = [request.document.id for request in stream._requests()]  # the plugin keeps only ids
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(ids) == N and len(stream._open) == N
    # The documents left the queue: unless the core keeps them, their memory is free again (a
    # document and its request held were ~6.7 KB here).
    print(f"{held / N:.0f} bytes per document handed out")
    assert held / N < 500, f"{held / N:.0f} bytes per document handed out"
