"""The emulator's data: companies, vendors, purchase documents, lines and attachments.

Entities carry a weak ``@odata.etag`` that changes on every write, as BC's do. Attachment
content is written to files (never held in memory), so large uploads stream through.
"""

from __future__ import annotations

import base64
import itertools
import shutil
import tempfile
import uuid
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

#: Entity sets of purchase documents → (line entity, vendor document number field, date field).
DOCUMENT_SETS = {
    "purchaseInvoices": ("purchaseInvoiceLines", "vendorInvoiceNumber", "invoiceDate", "Purchase Invoice"),
    "purchaseCreditMemos": ("purchaseCreditMemoLines", "vendorCreditMemoNumber", "creditMemoDate",
                            "Purchase Credit Memo"),
}
ATTACHMENT_SETS = ("attachments", "documentAttachments")
#: Documented parentType values of each attachment entity.
PARENT_TYPES = {
    "attachments": {" ", "Journal", "Sales Order", "Sales Quote", "Sales Credit Memo", "Sales Invoice",
                    "Purchase Invoice"},
    "documentAttachments": {" ", "Journal", "Sales Order", "Sales Quote", "Sales Credit Memo", "Sales Invoice",
                            "Purchase Invoice", "Purchase Order", "Purchase Credit Memo", "Item", "Customer",
                            "Vendor", "Employee"},
}
_counter = itertools.count(1)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def new_etag() -> str:
    """A weak etag shaped like BC's: base64 of ``'19;<row version>;00;'``."""
    payload = f"'19;{next(_counter)}{uuid.uuid4().int % 10**12};00;'"
    return 'W/"' + base64.b64encode(payload.encode()).decode() + '"'


@dataclass
class CompanyData:
    id: str
    name: str
    #: BC's company ``name`` is its unique key; the ``displayName`` people see may repeat.
    display_name: str = ""
    local_currency: str = "EUR"
    currencies: set[str] = field(default_factory=lambda: {"USD", "GBP", "CHF"})
    vendors: dict[str, dict[str, Any]] = field(default_factory=dict)
    documents: dict[str, dict[str, dict[str, Any]]] = field(default_factory=lambda: {k: {} for k in DOCUMENT_SETS})
    lines: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    attachments: dict[str, dict[str, dict[str, Any]]] = field(default_factory=lambda: {k: {} for k in ATTACHMENT_SETS})
    numbers: dict[str, int] = field(default_factory=lambda: {"vendors": 10000, "purchaseInvoices": 108000,
                                                             "purchaseCreditMemos": 109000})
    #: How many times Microsoft.NAV.post was called (the exporter must never post).
    posted: int = 0

    def company_json(self) -> dict[str, Any]:
        return {"id": self.id, "systemVersion": "25.0.23364.0", "timestamp": 12345, "name": self.name,
                "displayName": self.display_name or self.name, "businessProfileId": "",
                "systemCreatedAt": "2024-01-01T00:00:00Z",
                "systemCreatedBy": "00000000-0000-0000-0000-000000000001",
                "systemModifiedAt": "2024-01-01T00:00:00Z",
                "systemModifiedBy": "00000000-0000-0000-0000-000000000001"}

    def next_number(self, series: str, prefix: str) -> str:
        self.numbers[series] += 10
        return f"{prefix}{self.numbers[series]}"

    def add_vendor(self, display_name: str, tax_registration_number: str = "", number: str | None = None,
                   blocked: str = " ") -> dict[str, Any]:
        vendor: dict[str, Any] = {
            "id": str(uuid.uuid4()), "number": number or self.next_number("vendors", "V"),
            "displayName": display_name, "addressLine1": "", "addressLine2": "", "city": "", "state": "",
            "country": "", "postalCode": "", "phoneNumber": "", "email": "", "website": "",
            "taxRegistrationNumber": tax_registration_number, "currencyId": "00000000-0000-0000-0000-000000000000",
            "currencyCode": "", "irs1099Code": "", "paymentTermsId": "00000000-0000-0000-0000-000000000000",
            "paymentMethodId": "00000000-0000-0000-0000-000000000000", "taxLiable": False, "blocked": blocked,
            "balance": 0, "lastModifiedDateTime": now(), "@odata.etag": new_etag(),
        }
        self.vendors[vendor["id"]] = vendor
        return vendor

    def vendor_by(self, *, number: str | None = None, id: str | None = None) -> dict[str, Any] | None:
        if id:
            return self.vendors.get(id.lower())
        return next((v for v in self.vendors.values() if v["number"] == number), None)


class ContentStore:
    """Attachment bytes on disk, one file per attachment id."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or Path(tempfile.mkdtemp(prefix="bc-sandbox-"))
        self.root.mkdir(parents=True, exist_ok=True)
        if root is None:  # a folder made here goes when the store does (or at exit)
            weakref.finalize(self, shutil.rmtree, self.root, True)

    def path(self, attachment_id: str) -> Path:
        return self.root / attachment_id

    def write(self, attachment_id: str, chunks: Any, limit: int | None = None) -> int | None:
        """Store the content; ``None`` (and the old content kept) if it grows past ``limit`` bytes."""
        size = 0
        part = self.path(attachment_id).with_suffix(".part")
        with open(part, "wb") as handle:
            for chunk in chunks:
                size += len(chunk)
                if limit is not None and size > limit:
                    for _ in chunks:  # read the rest of the request, so the connection stays usable
                        pass
                    handle.close()
                    part.unlink()
                    return None
                handle.write(chunk)
        part.replace(self.path(attachment_id))
        return size

    def chunks(self, attachment_id: str, size: int = 1024 * 1024) -> Iterator[bytes]:
        """The content a chunk at a time, so a large download never sits in memory."""
        path = self.path(attachment_id)
        if not path.exists():
            return
        with open(path, "rb") as handle:
            while chunk := handle.read(size):
                yield chunk

    def read(self, attachment_id: str) -> bytes:
        path = self.path(attachment_id)
        return path.read_bytes() if path.exists() else b""

    def delete(self, attachment_id: str) -> None:
        self.path(attachment_id).unlink(missing_ok=True)
