"""The streaming push's commit window holds small records, not documents: memory does not grow
with the files waiting for the next ``finish_batch_v2`` (up to 1,000, or ``commit_interval``)."""

from __future__ import annotations

import threading
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from invoicesync import DeliveryStatus, Document, PushRequest
from invoicesync_dropbox import stream as stream_module

FIRST, SECOND = 40, 240


def _ours(snapshot: tracemalloc.Snapshot) -> int:
    """Bytes allocated outside the Dropbox sandbox (it runs in this process, keeping every session)."""
    outside = snapshot.filter_traces([tracemalloc.Filter(False, "*/sandbox/*", all_frames=True)])
    return sum(stat.size for stat in outside.statistics("filename"))


def test_documents_waiting_for_the_commit_keep_little_memory_each(env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    env.configure(commit_interval=3600)  # nothing commits until the input ends
    pushes: list[Any] = []
    original_init = stream_module.StreamPush.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        pushes.append(self)

    monkeypatch.setattr(stream_module.StreamPush, "__init__", init)
    # Documents as the core hands them: made from text as they are asked for, held by no one else.
    texts = [env.document(f"MEM-{i:04d}", pdf=f"%PDF memory {i}".encode()).model_dump_json()
             for i in range(SECOND)]
    heap: dict[int, int] = {}
    go_on = threading.Event()

    def waiting(n: int) -> int:
        push = pushes[0]
        with push._cond:
            return len(push._waiting)

    def requests() -> Iterator[PushRequest]:
        for i, text in enumerate(texts):
            if i in (FIRST, SECOND - 1):
                ready = FIRST if i == FIRST else SECOND - 1
                while waiting(ready) < ready:
                    threading.Event().wait(0.01)
                heap[ready] = _ours(tracemalloc.take_snapshot())
                if i == SECOND - 1:
                    go_on.set()
            yield PushRequest(document=Document.model_validate_json(text))

    ctx = env.context()
    tracemalloc.start(25)  # deep enough to see a sandbox frame below any allocation
    try:  # a lazy iterable, as the core hands it (``env.push`` would make a list of it first)
        deliveries = list(env.workspace.plugins.call("dropbox", "push_documents", account=env.account,
                                                     requests=requests(), ctx=ctx))
    finally:
        tracemalloc.stop()
        ctx.close()
    assert go_on.is_set()
    assert [d.status for d in deliveries] == [DeliveryStatus.DELIVERED] * SECOND
    assert env.app.count("POST", r"^/2/files/upload_session/finish_batch_v2$") == 1
    per_file = (heap[SECOND - 1] - heap[FIRST]) / (SECOND - 1 - FIRST)
    print(f"{per_file:.0f} bytes per waiting file")
    # With the document and its request kept per waiting file: ~8.6 KB. Now what is left is the
    # file's own record (FileRef, paths, session id, content hash): ~3.6 KB.
    assert per_file < 5000, f"{per_file:.0f} bytes per waiting file"
