"""Read one Billit ``Order`` (``GET /v1/orders/{id}``) into the library's ``Document``.

Every field is checked against the type Billit's Swagger declares (int32, double, boolean,
date-time, uuid, object, array). A value of the wrong type fails this one document with a
``DocumentError`` that names the order and the field; absent or null fields are fine.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from invoicesync import Direction as LibraryDirection
from invoicesync import DocumentError, DocumentKind, FileRole, Party

from .listing import parse_timestamp

KINDS = {
    "Invoice": DocumentKind.INVOICE,
    "CreditNote": DocumentKind.CREDIT_NOTE,
    "Offer": DocumentKind.OFFER,
    "DeliveryNote": DocumentKind.DELIVERY_NOTE,
    "OrderForm": DocumentKind.ORDER,
}
DIRECTIONS = {"Income": LibraryDirection.SALES, "Cost": LibraryDirection.PURCHASE}
INT32 = (-(2**31), 2**31 - 1)
_CURRENCY = re.compile(r"^[A-Z]{3}$")

#: Small, useful facts kept in ``Document.raw`` (never the OCR text or the lines).
RAW_FIELDS = ("OrderID", "CompanyID", "OrderType", "OrderDirection", "OrderStatus", "ApprovalStatus",
              "PaymentReference", "Reference", "ExternalProvider", "LastModified", "Created", "ToPay",
              "PaidDate", "AboutInvoiceNumber")


@dataclass(frozen=True)
class FileEntry:
    file_id: str
    name: str | None
    role: FileRole
    field: str


class OrderReader:
    """Typed access to an order's fields; a wrong type raises ``DocumentError`` naming the field."""

    def __init__(self, order: Any, requested_id: str) -> None:
        self.label = f"order {requested_id}"
        if not isinstance(order, dict):
            raise DocumentError(f"expected a JSON object, got {type(order).__name__}", document=self.label)
        self.order = order
        number = order.get("OrderNumber")
        if isinstance(number, str) and number.strip():
            self.label = f"{number.strip()} (OrderID {requested_id})"

    def fail(self, field: str, expected: str, value: Any) -> DocumentError:
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        return DocumentError(f"{field} must be {expected} (Billit's Swagger type), got {shown}",
                             document=self.label, field=field)

    def _get(self, field: str, source: dict[str, Any] | None) -> Any:
        return (self.order if source is None else source).get(field)

    def int32(self, field: str, *, required: bool = False, source: dict[str, Any] | None = None,
              path: str | None = None) -> int | None:
        value = self._get(field, source)
        if value is None and not required:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not INT32[0] <= value <= INT32[1]:
            raise self.fail(path or field, "a 32-bit integer", value)
        return value

    def string(self, field: str, *, source: dict[str, Any] | None = None, path: str | None = None) -> str | None:
        value = self._get(field, source)
        if value is not None and not isinstance(value, str):
            raise self.fail(path or field, "a string", value)
        return value

    def enum(self, field: str, allowed: dict[str, Any], *, required: bool = True) -> Any:
        value = self.order.get(field)
        if value is None and not required:
            return None
        if not isinstance(value, str) or value not in allowed:
            raise self.fail(field, "one of " + ", ".join(allowed), value)
        return allowed[value]

    def decimal(self, field: str) -> Decimal | None:
        value = self.order.get(field)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | Decimal) \
                or (isinstance(value, Decimal) and not value.is_finite()):
            raise self.fail(field, "a number", value)
        return Decimal(value)

    def boolean(self, field: str) -> bool | None:
        value = self.order.get(field)
        if value is not None and not isinstance(value, bool):
            raise self.fail(field, "true or false", value)
        return value

    def timestamp(self, field: str, *, required: bool = False) -> datetime | None:
        value = self.order.get(field)
        if value is None and not required:
            return None
        parsed = parse_timestamp(value)
        if parsed is None:
            raise self.fail(field, "a date-time like 2025-04-25T00:00:00", value)
        return parsed

    def date(self, field: str) -> date | None:
        value = self.timestamp(field)
        return value.date() if value else None

    def obj(self, field: str, *, source: dict[str, Any] | None = None, path: str | None = None
            ) -> dict[str, Any] | None:
        value = self._get(field, source)
        if value is not None and not isinstance(value, dict):
            raise self.fail(path or field, "an object", value)
        return value

    def array(self, field: str) -> list[Any]:
        value = self.order.get(field)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(field, "an array", value)
        return value

    # -- composite reads ---------------------------------------------------------------------

    def counterparty(self, direction: LibraryDirection) -> Party:
        # CounterParty is the other side; fall back to Customer (sales) / Supplier (purchases).
        fallback = "Customer" if direction is LibraryDirection.SALES else "Supplier"
        party = self.obj("CounterParty") or self.obj(fallback) or {}
        where = "CounterParty" if self.order.get("CounterParty") is not None else fallback
        # The display name first; the legal Name and a CommercialName that differ from it are
        # the party's other names (a target matching vendors may know it by any of them).
        names: list[str] = []
        for key in ("DisplayName", "Name", "CommercialName"):
            value = (self.string(key, source=party, path=f"{where}/{key}") or "").strip()
            if value and value.casefold() not in {n.casefold() for n in names}:
                names.append(value)
        vat = self.string("VATNumber", source=party, path=f"{where}/VATNumber")
        return Party(name=names[0] if names else "", other_names=names[1:],
                     vat_number=(vat or "").replace(" ", "") or None, peppol_id=self._peppol_id(party, where))

    def _peppol_id(self, party: dict[str, Any], where: str) -> str | None:
        explicit = self.string("PeppolIdentifier", source=party, path=f"{where}/PeppolIdentifier")
        if explicit:
            return explicit.strip()
        identifiers = party.get("Identifiers")
        if identifiers is None:
            return None
        if not isinstance(identifiers, list):
            raise self.fail(f"{where}/Identifiers", "an array", identifiers)
        candidates = []
        for entry in identifiers:
            if not isinstance(entry, dict):
                raise self.fail(f"{where}/Identifiers", "an array of objects", entry)
            scheme = self.string("SchemeID", source=entry, path=f"{where}/Identifiers/SchemeID")
            ident = self.string("Identifier", source=entry, path=f"{where}/Identifiers/Identifier")
            if scheme and ident:
                candidates.append((entry.get("Preferred") is True, f"{scheme}:{ident}"))
        candidates.sort(key=lambda c: not c[0])  # a Preferred identifier wins
        return candidates[0][1] if candidates else None

    def files(self) -> list[FileEntry]:
        """OrderPDF (the main PDF) and every attachment; an ``.xml`` attachment is the UBL."""
        entries = []
        pdf = self.obj("OrderPDF")
        if pdf is not None and pdf.get("FileID") is not None:
            entries.append(self._file(pdf, FileRole.PDF, "OrderPDF"))
        for index, attachment in enumerate(self.array("Attachments")):
            path = f"Attachments[{index}]"
            if not isinstance(attachment, dict):
                raise self.fail(path, "an object", attachment)
            entry = self._file(attachment, FileRole.ATTACHMENT, path)
            name = (entry.name or "").lower()
            mime = str(attachment.get("MimeType") or "").lower()
            if name.endswith(".xml") or "xml" in mime:
                entry = FileEntry(entry.file_id, entry.name, FileRole.UBL, entry.field)
            entries.append(entry)
        return entries

    def _file(self, data: dict[str, Any], role: FileRole, path: str) -> FileEntry:
        file_id = data.get("FileID")
        try:
            if not isinstance(file_id, str):
                raise ValueError
            canonical = str(uuid.UUID(file_id))
        except ValueError:
            raise self.fail(f"{path}/FileID", "a uuid", file_id) from None
        name = self.string("FileName", source=data, path=f"{path}/FileName")
        return FileEntry(canonical, name, role, path)

    def currency(self) -> str:
        value = self.string("Currency") or "EUR"
        if not _CURRENCY.match(value.strip().upper()):
            raise self.fail("Currency", "a three-letter currency code", value)
        return value.strip().upper()

    def raw(self) -> dict[str, Any]:
        keep = {k: self.order[k] for k in RAW_FIELDS if self.order.get(k) is not None}
        return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in keep.items()}
