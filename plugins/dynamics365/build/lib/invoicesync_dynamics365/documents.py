"""How an invoicesync document maps onto a Business Central purchase document."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from invoicesync import Document, DocumentError, DocumentKind, RemoteError

#: BC's "Vendor Invoice No." / "Vendor Cr. Memo No." are Code[35].
MAX_VENDOR_DOCUMENT_NUMBER = 35
#: BC line descriptions are Text[100].
MAX_DESCRIPTION = 100
COMMENT_MARKER = "invoicesync:"


@dataclass(frozen=True)
class Kind:
    """One BC purchase document type: its entity set and the names that differ between them."""

    entity: str
    lines: str
    number_field: str
    date_field: str
    parent_type: str
    label: str


PURCHASE_INVOICE = Kind("purchaseInvoices", "purchaseInvoiceLines", "vendorInvoiceNumber", "invoiceDate",
                        "Purchase Invoice", "purchase invoice")
PURCHASE_CREDIT_MEMO = Kind("purchaseCreditMemos", "purchaseCreditMemoLines", "vendorCreditMemoNumber",
                            "creditMemoDate", "Purchase Credit Memo", "purchase credit memo")

KINDS = {DocumentKind.INVOICE: PURCHASE_INVOICE, DocumentKind.CREDIT_NOTE: PURCHASE_CREDIT_MEMO}


def vendor_document_number(document: Document) -> str:
    number = document.number.strip()
    if not number:
        raise DocumentError("has no invoice number; Business Central needs one as the vendor invoice number",
                            document=document.id, field="number")
    if len(number) > MAX_VENDOR_DOCUMENT_NUMBER:
        raise DocumentError(
            f"the number {number!r} is {len(number)} characters long; Business Central accepts at most "
            f"{MAX_VENDOR_DOCUMENT_NUMBER} for the vendor invoice number",
            document=document.id, field="number")
    return number


def header(document: Document, kind: Kind, vendor: dict[str, Any], number: str,
           local_currency: str | None = None) -> dict[str, Any]:
    """The draft's header; only fields BC documents as writable. Dates are ``YYYY-MM-DD``.

    ``currencyCode`` is left out for the company's local currency: BC writes LCY as a blank code
    (its currency table holds foreign currencies only).
    """
    # vendorNumber where BC gave us one (what Therefore and most clients send), else the GUID.
    body: dict[str, Any] = (
        {"vendorNumber": vendor["number"]} if vendor.get("number") else {"vendorId": vendor["id"]}
    )
    body[kind.number_field] = number
    if document.issue_date:
        body[kind.date_field] = document.issue_date.isoformat()
    if document.due_date:
        body["dueDate"] = document.due_date.isoformat()
    currency = (document.currency or "").strip().upper()
    if currency and currency != (local_currency or "").strip().upper():
        body["currencyCode"] = currency
    return body


def comment_line(document: Document) -> dict[str, Any]:
    """One Comment line that carries the totals for the person who books the draft."""
    parts = [f"total {document.amount_incl_vat} {document.currency}" if document.amount_incl_vat is not None
             else f"{document.number}"]
    if document.amount_excl_vat is not None:
        parts.append(f"excl. VAT {document.amount_excl_vat}")
    if document.amount_vat is not None:
        parts.append(f"VAT {document.amount_vat}")
    text = f"{COMMENT_MARKER} " + ", ".join(parts)
    return {"lineType": "Comment", "description": text[:MAX_DESCRIPTION]}


def is_our_comment(line: dict[str, Any]) -> bool:
    return line.get("lineType") == "Comment" and str(line.get("description", "")).startswith(COMMENT_MARKER)


def currency_refused(exc: RemoteError) -> bool:
    """BC's answer to a currency code missing from its Currency table (a 400 table-relation error)."""
    return exc.status == 400 and (exc.code == "Internal_InvalidTableRelation" or "currency" in str(exc).lower())
