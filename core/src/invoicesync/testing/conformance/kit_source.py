"""The source that feeds the target suite: a handful of fixed documents, deterministic to the
byte (so a second home imports the very same versions), with files streamed in chunks so a
large one never sits in memory. A record may carry a UBL and attachments, or be image-only (a
photo and nothing else), and may be deleted (``KitSource.delete``)."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from ...context import Context, PluginInfo, PluginKind
from ...hookspecs import hookimpl
from ...models import (
    Account,
    Checkpoint,
    Company,
    Deletion,
    Direction,
    Document,
    DocumentRef,
    FileRole,
    Party,
)

COMPANY = Company(id="kit", name="Conformance BV", vat_number="BE0200000000")
CHUNK = 1024 * 1024


@dataclass
class KitRecord:
    source_id: str
    number: str
    size: int = 2048
    counterparty: str = "Supplier NV"
    seed: int = 0
    #: Extra files beside the PDF: ``(file name, media type)``; their bytes are made from both.
    attachments: tuple[tuple[str, str], ...] = ()
    ubl: bool = False
    #: A photographed receipt: no PDF, no UBL, only its attachments (a JPEG if none are given).
    image_only: bool = False

    def chunks(self) -> Iterator[bytes]:
        """The PDF's bytes, generated a chunk at a time: a header that makes each file unique,
        then seeded noise (fast, incompressible and never held whole)."""
        header = f"%PDF-1.4\n% invoicesync conformance {self.source_id} {self.number}\n".encode()
        rng = random.Random(f"{self.source_id}:{self.seed}")
        remaining = max(self.size, len(header)) - len(header)
        yield header
        while remaining > 0:
            n = min(CHUNK, remaining)
            remaining -= n
            yield rng.randbytes(n)

    def extra_files(self) -> list[tuple[str, str, FileRole, bytes]]:
        """``(name, media type, role, bytes)`` of every file but the PDF, each unique to this record."""
        extras = []
        if self.ubl and not self.image_only:
            extras.append((f"{self.number}.xml", "application/xml", FileRole.UBL,
                           f"<Invoice><ID>{self.number}</ID><Kit>{self.source_id}</Kit></Invoice>".encode()))
        attachments = self.attachments or ((("receipt.jpg", "image/jpeg"),) if self.image_only else ())
        for name, media_type in attachments:
            extras.append((name, media_type, FileRole.ATTACHMENT,
                           f"{media_type} {name} of {self.source_id}/{self.number}/{self.seed}".encode()))
        return extras


class KitSource:
    """A source plugin object: ``records`` are listed in order, then ``deletions``; the cursor is
    how many of each were seen (``"6"``, or ``"6.1"`` once there are deletions)."""

    def __init__(self, count: int = 6) -> None:
        self.records = [KitRecord(f"k{i}", f"KIT-{i:03d}") for i in range(count)]
        self.deletions: list[str] = []
        self._lock = threading.Lock()

    def delete(self, source_id: str) -> None:
        """The document is deleted at the source: the next listing reports it as a ``Deletion``."""
        with self._lock:
            self.deletions.append(source_id)

    def add(self, record: KitRecord) -> None:
        with self._lock:
            self.records.append(record)

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(kind=PluginKind.SOURCE, title="Conformance kit source", api_version=(1, 2))

    @hookimpl
    def auth(self) -> list[Company]:
        return [COMPANY]

    @hookimpl
    def list_documents(self, cursor: str | None) -> Iterator[DocumentRef | Deletion | Checkpoint]:
        with self._lock:
            records, deletions = list(self.records), list(self.deletions)
        seen, _, seen_deleted = (cursor or "0").partition(".")
        start, deleted_start = int(seen), int(seen_deleted or 0)
        for n, record in enumerate(records[start:], start):
            yield DocumentRef(source_id=record.source_id, modified_at=_stamp(n))
        for n, source_id in enumerate(deletions[deleted_start:], len(records) + deleted_start):
            yield Deletion(source_id=source_id, deleted_at=_stamp(n))
        yield Checkpoint(cursor=f"{len(records)}.{len(deletions)}" if deletions else str(len(records)))

    @hookimpl
    def fetch_document(self, account: Account, company: Company, ref: DocumentRef, ctx: Context) -> Document:
        with self._lock:
            record = next(r for r in self.records if r.source_id == ref.source_id)
        files = [] if record.image_only else [
            ctx.blobs.put(record.chunks(), name=f"{record.number}.pdf", media_type="application/pdf",
                          role=FileRole.PDF)]
        for name, media_type, role, data in record.extra_files():
            files.append(ctx.blobs.put([data], name=name, media_type=media_type, role=role))
        return Document(
            id=Document.make_id(account.plugin, account.name, company.id, record.source_id),
            source=account.plugin, account=account.name, company=company, source_id=record.source_id,
            direction=Direction.PURCHASE, number=record.number, issue_date=date(2026, 3, 1),
            amount_excl_vat=Decimal("100.00"), amount_vat=Decimal("21.00"), amount_incl_vat=Decimal("121.00"),
            counterparty=Party(name=record.counterparty, vat_number="BE0999999999"),
            modified_at=ref.modified_at, files=files,
        )


def _stamp(n: int) -> datetime:
    return datetime(2026, 3, 1, tzinfo=UTC) + timedelta(minutes=n)
