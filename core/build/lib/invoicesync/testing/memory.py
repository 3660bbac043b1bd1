"""In-memory source and target plugins: for core tests, and as the smallest working examples
of the hook contract. Register them with ``Plugins.from_objects``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from ..context import Context, PluginInfo, PluginKind, Settings
from ..errors import DocumentError
from ..hookspecs import hookimpl
from ..models import (
    Account,
    Checkpoint,
    Company,
    Deletion,
    Delivery,
    DeliveryStatus,
    Direction,
    Document,
    DocumentKind,
    DocumentRef,
    FileRole,
    Party,
    PushRequest,
)

COMPANY = Company(id="c1", name="Acme BV", vat_number="BE0123456789")


@dataclass
class MemoryRecord:
    source_id: str
    modified_at: datetime
    number: str
    pdf: bytes | None = b"%PDF-1.4 memory\n"
    direction: Direction = Direction.PURCHASE
    deleted: bool = False
    broken: bool = False  #: fetch fails with a DocumentError (a malformed payload)
    #: More files: (name, media type, content), e.g. signed terms, a spreadsheet, a photo of a receipt.
    attachments: list[tuple[str, str, bytes]] = field(default_factory=list)
    ubl: bytes | None = None
    issue_date: date = date(2026, 1, 1)
    kind: DocumentKind = DocumentKind.INVOICE


class MemorySource:
    """A source whose documents live in a list. The cursor is the last ``modified_at`` seen."""

    def __init__(self, count: int = 0, *, page: int = 10) -> None:
        start = datetime(2026, 1, 1, tzinfo=UTC)
        self.records = [
            MemoryRecord(f"m{i}", start + timedelta(minutes=i), f"INV-{i:04d}", pdf=f"%PDF memory {i}\n".encode())
            for i in range(count)
        ]
        self.page = page
        self.fetches = 0
        self._lock = threading.Lock()

    def touch(self, source_id: str, **changes: object) -> None:
        with self._lock:
            record = next(r for r in self.records if r.source_id == source_id)
            for key, value in changes.items():
                setattr(record, key, value)
            record.modified_at = max(r.modified_at for r in self.records) + timedelta(minutes=1)

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(kind=PluginKind.SOURCE, title="Memory source", settings=Settings, api_version=(1, 2))

    @hookimpl
    def auth(self, account: Account, ctx: Context) -> list[Company]:
        return [COMPANY]

    @hookimpl
    def list_documents(self, account: Account, company: Company, cursor: str | None,
                       ctx: Context) -> Iterator[DocumentRef | Deletion | Checkpoint]:
        since = datetime.fromisoformat(cursor) if cursor else None
        with self._lock:
            changed = sorted((r for r in self.records if since is None or r.modified_at >= since),
                             key=lambda r: r.modified_at)
        for start in range(0, len(changed), self.page):
            for record in changed[start:start + self.page]:
                if record.deleted:
                    yield Deletion(source_id=record.source_id, deleted_at=record.modified_at)
                else:
                    yield DocumentRef(source_id=record.source_id, modified_at=record.modified_at)
            yield Checkpoint(cursor=changed[min(start + self.page, len(changed)) - 1].modified_at.isoformat())

    @hookimpl
    def fetch_document(self, account: Account, company: Company, ref: DocumentRef, ctx: Context) -> Document:
        with self._lock:
            self.fetches += 1
            record = next(r for r in self.records if r.source_id == ref.source_id)
        if record.broken:
            raise DocumentError("TotalIncl is not a number", document=record.number, field="TotalIncl")
        files = []
        if record.pdf is not None:
            files.append(ctx.blobs.put(iter([record.pdf]), name=f"{record.number}.pdf",
                                       media_type="application/pdf", role=FileRole.PDF))
        if record.ubl is not None:
            files.append(ctx.blobs.put(iter([record.ubl]), name=f"{record.number}.xml",
                                       media_type="application/xml", role=FileRole.UBL))
        for name, media_type, content in record.attachments:
            files.append(ctx.blobs.put(iter([content]), name=name, media_type=media_type, role=FileRole.ATTACHMENT))
        return Document(
            id=Document.make_id(account.plugin, account.name, company.id, record.source_id),
            source=account.plugin, account=account.name, company=company, source_id=record.source_id,
            direction=record.direction, kind=record.kind, number=record.number, issue_date=record.issue_date,
            amount_excl_vat=Decimal("100.00"), amount_vat=Decimal("21.00"), amount_incl_vat=Decimal("121.00"),
            counterparty=Party(name="Supplier NV", vat_number="BE0999999999"),
            modified_at=record.modified_at, files=files,
        )


@dataclass(eq=False)  # plugins must stay hashable for pluggy
class MemoryTarget:
    """A target that keeps what it receives. ``fail_ids`` fail; ``writes`` counts real writes.

    ``stored`` maps a document id to the version it holds, ``files`` to the names of the files it
    was handed (``PushRequest.files``); a deletion removes both and is remembered in ``deleted``."""

    stored: dict[str, str] = field(default_factory=dict)
    files: dict[str, list[str]] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    writes: int = 0
    fail_ids: set[str] = field(default_factory=set)
    #: source_id -> how many more pushes fail transiently (``retry_after``), like lock contention
    transient: dict[str, int] = field(default_factory=dict)
    batches: list[int] = field(default_factory=list)

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(kind=PluginKind.TARGET, title="Memory target", batch_size=5, concurrency=2,
                          api_version=(1, 2))

    @hookimpl
    def auth(self, account: Account, ctx: Context) -> list[Company]:
        return []

    @hookimpl
    def push_documents(self, account: Account, requests: list[PushRequest], ctx: Context) -> Iterator[Delivery]:
        self.batches.append(len(requests))
        for request in requests:
            document = request.document
            if self.transient.get(document.source_id, 0) > 0:
                self.transient[document.source_id] -= 1
                yield Delivery(document_id=document.id, target=account.name, version=document.version,
                               status=DeliveryStatus.FAILED, message="too_many_write_operations", retry_after=0.01)
                continue
            if document.source_id in self.fail_ids:
                yield Delivery(document_id=document.id, target=account.name, version=document.version,
                               status=DeliveryStatus.FAILED, message="injected failure")
                continue
            if ctx.dry_run:
                yield Delivery(document_id=document.id, target=account.name, version=document.version,
                               status=DeliveryStatus.PLANNED, target_path=f"memory/{document.number}",
                               message="would delete" if document.deleted else None)
                continue
            if document.deleted:  # API 2: apply the deletion policy (here: remove it)
                self.stored.pop(document.id, None)
                self.files.pop(document.id, None)
                self.deleted.add(document.id)
                yield Delivery(document_id=document.id, target=account.name, version=document.version,
                               status=DeliveryStatus.DELETED, target_path=f"memory/{document.number}")
                continue
            # Look up before writing: this version with every requested file already here → nothing to do.
            wanted = [f.name for f in request.files]
            held = self.files.get(document.id, [])
            if self.stored.get(document.id) == document.version and set(wanted) <= set(held):
                status = DeliveryStatus.UNCHANGED
            else:
                same_version = self.stored.get(document.id) == document.version
                # Back-fill: the same version gains only the missing files; a new version is rewritten.
                self.files[document.id] = [*held, *(n for n in wanted if n not in held)] if same_version else wanted
                self.stored[document.id] = document.version
                self.writes += 1
                status = DeliveryStatus.DELIVERED
            yield Delivery(document_id=document.id, target=account.name, version=document.version,
                           status=status, target_id=document.id, target_path=f"memory/{document.number}")
