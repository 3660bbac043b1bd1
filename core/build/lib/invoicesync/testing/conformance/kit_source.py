"""The source that feeds the target suite: a handful of fixed documents, deterministic to the
byte (so a second home imports the very same versions), with files streamed in chunks so a
large one never sits in memory."""

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


class KitSource:
    """A source plugin object: ``records`` are listed in order; the cursor is how many were seen."""

    def __init__(self, count: int = 6) -> None:
        self.records = [KitRecord(f"k{i}", f"KIT-{i:03d}") for i in range(count)]
        self._lock = threading.Lock()

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
    def list_documents(self, cursor: str | None) -> Iterator[DocumentRef | Checkpoint]:
        with self._lock:
            records = list(self.records)
        start = int(cursor or 0)
        for n, record in enumerate(records[start:], start):
            yield DocumentRef(source_id=record.source_id, modified_at=_stamp(n))
        yield Checkpoint(cursor=str(len(records)))

    @hookimpl
    def fetch_document(self, account: Account, company: Company, ref: DocumentRef, ctx: Context) -> Document:
        with self._lock:
            record = next(r for r in self.records if r.source_id == ref.source_id)
        pdf = ctx.blobs.put(record.chunks(), name=f"{record.number}.pdf", media_type="application/pdf",
                            role=FileRole.PDF)
        return Document(
            id=Document.make_id(account.plugin, account.name, company.id, record.source_id),
            source=account.plugin, account=account.name, company=company, source_id=record.source_id,
            direction=Direction.PURCHASE, number=record.number, issue_date=date(2026, 3, 1),
            amount_excl_vat=Decimal("100.00"), amount_vat=Decimal("21.00"), amount_incl_vat=Decimal("121.00"),
            counterparty=Party(name=record.counterparty, vat_number="BE0999999999"),
            modified_at=ref.modified_at, files=[pdf],
        )


def _stamp(n: int) -> datetime:
    return datetime(2026, 3, 1, tzinfo=UTC) + timedelta(minutes=n)
