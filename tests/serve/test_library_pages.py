"""The library a page at a time over a big state (migration 10): every filter pages through exactly its
documents, newest first, once; the text search is case-blind beyond ASCII; a status filter's work
does not grow with the library; the CLI reads a page in a few statements, not one per document.
How fast at 100,000 documents is measured by benchmarks/serve_documents.py, not here."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from invoicesync.cli import cli
from invoicesync.models import Account, Company, Delivery, DeliveryStatus, Direction, Document, DocumentKind, Party
from invoicesync.state import MIGRATIONS, DocumentFilter, SqliteStore, _library
from invoicesync.state._sql import SqlStore

TARGETS = ("alpha", "beta")
NAMES = ["Proximus", "Ölbrich & Zonen", "Brico", "Securex"]


def make(n: int) -> Document:
    return Document(
        id=Document.make_id("s", "a" if n % 3 else "b", f"c{n % 2}", str(n)), source="s",
        account="a" if n % 3 else "b", company=Company(id=f"c{n % 2}", name=f"C{n % 2}"), source_id=str(n),
        direction=Direction.SALES if n % 4 else Direction.PURCHASE,
        kind=DocumentKind.CREDIT_NOTE if n % 5 == 0 else DocumentKind.INVOICE, number=f"INV-{n:04d}",
        issue_date=date(2025, 1, 1) + timedelta(days=n), counterparty=Party(name=NAMES[n % len(NAMES)]),
        deleted=n % 11 == 0)


def status_of(n: int, target: str) -> DeliveryStatus | None:
    """Mostly delivered; failed now and then, a few pending, some never sent to beta."""
    if target == "beta" and n % 6 == 0:
        return None
    if n % 7 == 3:
        return DeliveryStatus.FAILED if target == "alpha" else DeliveryStatus.DELIVERED
    if n % 13 == 5:
        return DeliveryStatus.PENDING
    return DeliveryStatus.DELIVERED


def fill(store: SqlStore, count: int) -> list[Document]:
    documents = [make(n) for n in range(count)]
    for n, document in enumerate(documents):
        store.upsert_document(document)
        for target in TARGETS:
            if (status := status_of(n, target)) is not None:
                store.record_delivery(Delivery(document_id=document.id, target=target, version=document.version,
                                               status=status, message="boom" if status == "failed" else None))
    return documents


def matches(n: int, document: Document, filters: DocumentFilter, text: str) -> bool:
    wanted = [
        filters.account in (None, document.account), filters.company in (None, document.company.id),
        filters.direction in (None, document.direction.value), filters.kind in (None, document.kind.value),
        not filters.since or (document.issue_date is not None and document.issue_date >= filters.since),
        not filters.until or (document.issue_date is not None and document.issue_date <= filters.until),
        filters.include_deleted or not document.deleted,
        text.lower() in f"{document.number}\n{document.counterparty.name}".lower(),
    ]
    statuses = [status_of(n, t) for t in filters.targets]
    if filters.status == "undelivered":
        wanted.append(None in statuses)
    elif filters.status is not None:
        wanted.append(filters.status in statuses)
    return all(wanted)


CASES = [
    (DocumentFilter(include_deleted=True), ""),
    (DocumentFilter(status="failed", targets=TARGETS, include_deleted=True), ""),
    (DocumentFilter(status="pending", targets=("beta",)), ""),
    (DocumentFilter(status="delivered", targets=TARGETS, account="a", direction="sales"), ""),
    (DocumentFilter(status="undelivered", targets=TARGETS, include_deleted=True), ""),
    (DocumentFilter(kind="credit_note", since=date(2025, 1, 20), until=date(2025, 3, 1), company="c0"), ""),
    (DocumentFilter(status="failed", targets=("alpha",), account="a"), "ölbrich"),
    (DocumentFilter(include_deleted=True), "INV-00"),
]


@pytest.mark.parametrize("rare", [True, False], ids=["status-from-ledger", "status-per-document"])
def test_every_filter_pages_through_its_documents_once_newest_first(
        open_store: Callable[..., SqlStore], monkeypatch: pytest.MonkeyPatch, rare: bool) -> None:
    # both plans of a status filter: from the ledger's rows (a rare status) and per document
    monkeypatch.setattr(_library, "RARE_STATUS_ROWS", 10**9 if rare else 0)
    store = open_store()
    documents = fill(store, 90)
    for filters, text in CASES:
        expected = [d.id for n, d in reversed(list(enumerate(documents))) if matches(n, d, filters, text)]
        seen: list[str] = []
        before = None
        while True:
            page = store.library_page(filters, text=text, before=before, limit=4, count_cap=1000)
            assert len(page.entries) <= 4
            seen += [e.document.id for e in page.entries]
            assert page.matches == len(expected) and not page.more_than
            if page.next_before is None:
                break
            before = page.next_before
        assert seen == expected and expected, (filters, text)
        if not text:  # the CLI's walk through the library, oldest first
            assert [e.document.id for e in store.library(filters)] == expected[::-1]
            assert [d.id for d in store.find_documents(filters)] == expected[::-1]


def test_the_count_stops_at_its_cap_and_says_so_but_the_whole_library_is_counted(
        open_store: Callable[..., SqlStore]) -> None:
    store = open_store()
    documents = fill(store, 30)
    kept = sum(not d.deleted for d in documents)
    for before in (None, 10**9):  # the first page counts in its own walk, a later one apart
        page = store.library_page(DocumentFilter(), limit=5, count_cap=10, before=before)
        assert (page.matches, page.more_than) == (10, True)
        page = store.library_page(DocumentFilter(), limit=5, count_cap=kept, before=before)
        assert (page.matches, page.more_than) == (kept, False)
        page = store.library_page(DocumentFilter(include_deleted=True), limit=5, count_cap=10, before=before)
        assert (page.matches, page.more_than) == (30, False)


def test_the_search_ignores_case_beyond_ascii(open_store: Callable[..., SqlStore]) -> None:
    store = open_store()
    fill(store, 8)
    for text in ("ölbrich", "ÖLBRICH", "Zonen", "inv-0005"):
        found = [e.document.number for e in store.library_page(DocumentFilter(include_deleted=True), text=text).entries]
        assert found == (["INV-0005"] if text == "inv-0005" else ["INV-0005", "INV-0001"]), text


def test_the_migration_fills_the_search_text_of_documents_stored_before_it(
        open_store: Callable[..., SqlStore]) -> None:
    # the version before the migration that added documents.search (10 on this branch)
    before = next(i for i, sql in enumerate(MIGRATIONS) if "ADD COLUMN search" in sql)
    old = open_store(target_version=before)
    document = make(1)
    old._exec("INSERT INTO documents (id, account, company, source_id, direction, kind, number, issue_date, version, "
              "body, first_seen, updated_at, deleted) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
              SqlStore._document_row(document)[:-1])
    old.close()
    store = open_store()
    for text in ("öLBRICH", "inv-0001"):
        assert [e.document.id for e in store.library_page(DocumentFilter(), text=text).entries] == [document.id]


@pytest.fixture
def big_sqlite(tmp_path: Path) -> Iterator[Callable[[int], SqliteStore]]:
    """``big(n)``: a SQLite state with ``n`` documents, all delivered to both targets but ten failed
    at alpha, filled with executemany (fast) through the store's own row mapping."""
    stores: list[SqliteStore] = []

    def big(count: int) -> SqliteStore:
        store = SqliteStore(tmp_path / f"state-{count}.db")
        stores.append(store)
        rows, deliveries = [], []
        for n in range(count):
            document = make(n)
            rows.append(store._document_row(document))
            for target in TARGETS:
                failed = target == "alpha" and n % (count // 10) == 1
                deliveries.append((document.id, target, document.version, "failed" if failed else "delivered",
                                   "2026-01-01T00:00:00+00:00"))
        store._db.execute("BEGIN")
        store._db.executemany(store.UPSERT_DOCUMENT, rows)
        store._db.executemany("INSERT INTO deliveries (document_id, target, version, status, at) "
                              "VALUES (?, ?, ?, ?, ?)", deliveries)
        store._db.execute("COMMIT")
        return store

    yield big
    for store in stores:
        store.close()


def vm_steps(store: SqliteStore, read: Callable[[], object]) -> int:
    """SQLite's virtual-machine instructions (in thousands) that ``read`` costs: work, not time."""
    steps = 0

    def tick() -> int:
        nonlocal steps
        steps += 1
        return 0

    store._db.set_progress_handler(tick, 1000)
    try:
        read()
    finally:
        store._db.set_progress_handler(None, 0)
    return steps


@pytest.mark.parametrize("status", ["delivered", "failed", "skipped"])
def test_a_status_filters_first_page_costs_the_same_in_a_library_four_times_as_big(
        big_sqlite: Callable[[int], SqliteStore], monkeypatch: pytest.MonkeyPatch, status: str) -> None:
    # Before migration 10 each document's ledger check scanned every ledger row of the status
    # (SQLite chose the (status, target) index), and a rare status walked the whole library.
    # Here "rare" is up to 100 ledger rows: failed (10) and skipped (none) are, delivered is not.
    monkeypatch.setattr(_library, "RARE_STATUS_ROWS", 100)
    filters = DocumentFilter(status=status, targets=TARGETS)
    small, large = big_sqlite(500), big_sqlite(2000)
    costs = [vm_steps(store, lambda s=store: s.library_page(filters, limit=20, count_cap=0))
             for store in (small, large)]
    assert costs[1] <= costs[0] * 1.5 + 20, costs


def test_the_documents_command_reads_the_library_in_a_few_statements_per_page(
        big_sqlite: Callable[[int], SqliteStore], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A regression guard: `documents --status` once ran a query per document (fixed before
    # migration 10, so this passes on the code before it too).
    store = big_sqlite(450)
    for target in TARGETS:
        store.save_account(Account(name=target, plugin="localfs", direction="export",
                                   settings={"root": str(tmp_path / target)}))
    store.close()
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "state-450.db").rename(home / "state.db")
    statements: list[str] = []
    connect = SqliteStore._connect

    def traced(self: SqliteStore) -> sqlite3.Connection:
        db = connect(self)
        db.set_trace_callback(statements.append)
        return db

    monkeypatch.setattr(SqliteStore, "_connect", traced)
    for status in ("failed", "delivered"):
        statements.clear()
        result = CliRunner().invoke(cli, ["--home", str(home), "documents", "--status", status, "--json"])
        assert result.exit_code == 0, result.output
        shown = result.output.count('"id":')
        assert shown == (10 if status == "failed" else sum(not make(n).deleted for n in range(450)))
        library = [s for s in statements if "documents" in s or "deliveries" in s]
        pages = shown // _library.BATCH + 1
        assert len(library) <= 3 * pages + 4, (status, len(library), library[:8])
