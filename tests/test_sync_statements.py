"""What a local sync costs in SQLite statements and write transactions per document.

Each statement on the shared state connection is a GIL release and a turn on the store's lock,
which every pipeline thread queues on, and each write transaction is a WAL commit (pages written,
file locks taken): at 0 ms latency they are what a document's thread hand-offs and system time
are made of. Pinned per document, so a change that adds one shows here (a count, not a timing):
two syncs of a streaming target, of ``SMALL`` and ``LARGE`` new documents, into fresh homes; the
difference divided by the extra documents is one document's cost, whatever the run costs once. And
the listing's wake-ups: one per few fetches that end, not one per fetch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from invoicesync import Account, Context, Delivery, PluginInfo, PluginKind, PushRequest
from invoicesync.accounts import connect
from invoicesync.context import NonInteractiveUI
from invoicesync.hookspecs import hookimpl
from invoicesync.pipeline import run_sync
from invoicesync.plugins import Plugins
from invoicesync.testing import MemorySource, MemoryTarget
from invoicesync.workspace import Workspace

TARGET = "streamtarget"
SMALL, LARGE = 10, 30

#: Per document: the library's read and write of it (import); then one transaction (BEGIN, COMMIT)
#: for its claim, the document and its ledger row read under the claim (one query) and the intent;
#: and one for the outcome with its claim released (BEGIN, the ledger row, the claim, COMMIT).
STATEMENTS_PER_DOCUMENT = 2 + 5 + 4
#: Per document: the document stored; the claim with the intent; the outcome with the claim's release.
TRANSACTIONS_PER_DOCUMENT = 3


@dataclass(eq=False)  # plugins must stay hashable for pluggy
class QuietStreamingTarget(MemoryTarget):
    """A streaming MemoryTarget with a queue no run of this size can fill (no backlog reads)."""

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(kind=PluginKind.TARGET, title="Streaming target", api_version=(1, 4), streaming=True,
                          batch_size=1000)

    @hookimpl
    def push_documents(self, account: Account, requests: Iterable[PushRequest], ctx: Context) -> Iterator[Delivery]:
        for request in requests:
            yield from MemoryTarget.push_documents(self, account, [request], ctx)


class Counts:
    def __init__(self) -> None:
        self.statements: Counter[str] = Counter()
        self.transactions = 0
        self._open = False
        self._last = ""

    def __call__(self, sql: str) -> None:
        # Python passes a trigger's run as its statement's text again (``sqlite3_expanded_sql`` of
        # the outer statement): a repeat of the last text on this one serialised connection.
        last, self._last = self._last, sql
        word = sql.split(None, 1)[0].upper() if sql.strip() else ""
        if sql == last or word.startswith("--"):
            return
        self.statements[" ".join(sql.split("'", 1)[0].split())[:60]] += 1  # without its values
        if word == "BEGIN":
            self._open = True
            self.transactions += 1
        elif word in ("COMMIT", "ROLLBACK", "END"):
            self._open = False
        elif not self._open and word in ("INSERT", "UPDATE", "DELETE", "REPLACE"):
            self.transactions += 1  # a write statement is its own transaction (autocommit)

    @property
    def total(self) -> int:
        return sum(self.statements.values())


def _sync(home: Path, documents: int) -> Counts:
    source, target = MemorySource(documents, page=1000), QuietStreamingTarget()
    plugins = Plugins.from_objects({"memory": (PluginKind.SOURCE, source), TARGET: (PluginKind.TARGET, target)})
    with Workspace.open(home, plugins=plugins) as workspace:
        connect(workspace, "memory", ui=NonInteractiveUI())
        connect(workspace, TARGET, ui=NonInteractiveUI())
        counts = Counts()
        workspace.state._db.set_trace_callback(counts)  # type: ignore[attr-defined]
        report = run_sync(workspace)
        workspace.state._db.set_trace_callback(None)  # type: ignore[attr-defined]
    assert report.exit_code == 0, report.problems
    assert report.exported[TARGET]["delivered"] == documents and len(target.stored) == documents
    return counts


def test_statements_and_transactions_per_document_of_a_local_streaming_sync(invoicesync_home: Path) -> None:
    small, large = _sync(invoicesync_home / "small", SMALL), _sync(invoicesync_home / "large", LARGE)
    extra = LARGE - SMALL
    assert (large.transactions - small.transactions) / extra == TRANSACTIONS_PER_DOCUMENT
    per_document = (large.total - small.total) / extra
    assert per_document == STATEMENTS_PER_DOCUMENT, (
        f"{per_document} statements per document:\n"
        + "\n".join(f"{(large.statements[s] - small.statements[s]) / extra} x {s}" for s in large.statements
                    if large.statements[s] != small.statements[s]))


def test_the_lister_is_woken_once_per_refill_not_once_per_fetch() -> None:
    """The listing's fetch slots wake the lister when ``refill`` are free (or all), so one wake-up
    lets it submit several documents: a thread hand-off per few documents, not per document."""
    import threading

    from invoicesync.pipeline._import import Slots

    slots = Slots(8, refill=4)
    wakes = 0
    notify_all = slots._cond.notify_all

    def counting() -> None:
        nonlocal wakes
        wakes += 1
        notify_all()

    slots._cond.notify_all = counting  # type: ignore[method-assign]
    for _ in range(8):
        slots.acquire()
    for _ in range(8):
        slots.release()
    assert wakes == 2  # at 4 free (a refill) and at 8 (all: the listing's end waits for that)
    slots.wait_all()  # all free: returns at once
    for _ in range(8):
        slots.acquire()
    waiter = threading.Thread(target=slots.acquire)
    waiter.start()
    for _ in range(4):
        slots.release()
    waiter.join(30)
    assert not waiter.is_alive()  # a refill lets the waiting lister in
