"""Real, small files for the emulator: a valid one-page PDF and a Peppol BIS UBL (with SBDH)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from xml.sax.saxutils import escape


def _amount(value: Any) -> str:
    """An amount to the cent; a malformed one (a test's broken payload) as its own text, so its
    files still download and only the order's JSON is wrong."""
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return f"{Decimal(str(value)):.2f}"
    return str(value)


def _pdf_text(value: str) -> str:
    safe = value.encode("latin-1", "replace").decode("latin-1")
    return safe.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def make_pdf(lines: list[str]) -> bytes:
    """A minimal, valid PDF 1.4: one A4 page of Helvetica text, with a correct xref table."""
    text = ["BT", "/F1 11 Tf", "14 TL", "50 800 Td"]
    for line in lines:
        text.append(f"({_pdf_text(line)}) Tj T*")
    text.append("ET")
    stream = "\n".join(text).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def order_pdf(order: dict[str, Any]) -> bytes:
    kind = "CREDIT NOTE" if order.get("OrderType") == "CreditNote" else str(order.get("OrderType", "")).upper()
    counter = order.get("CounterParty") or {}
    lines = [
        f"{kind} {order.get('OrderNumber', '')}",
        f"Date: {str(order.get('OrderDate', ''))[:10]}   Due: {str(order.get('ExpiryDate', ''))[:10]}",
        f"{'Customer' if order.get('OrderDirection') == 'Income' else 'Supplier'}: "
        f"{counter.get('DisplayName', '')} ({counter.get('VATNumber', '')})",
        "",
    ]
    for line in order.get("OrderLines") or []:
        lines.append(f"{line.get('Quantity')} x {line.get('Description')}  {_amount(line.get('TotalExcl'))} "
                     f"+ VAT {line.get('VATPercentage')}%")
    lines += ["", f"Total excl. VAT: {_amount(order.get('TotalExcl'))} {order.get('Currency')}",
              f"VAT: {_amount(order.get('TotalVAT'))}", f"Total: {_amount(order.get('TotalIncl'))}",
              f"Structured communication: {order.get('PaymentReference', '')}"]
    return make_pdf(lines)


def _party_xml(tag: str, party: dict[str, Any]) -> str:
    vat = escape(str(party.get("VATNumber", "")))
    company_id = vat[2:] if vat.startswith("BE") else vat
    return (f"<cac:{tag}><cac:Party>"
            f"<cbc:EndpointID schemeID=\"0208\">{company_id}</cbc:EndpointID>"
            f"<cac:PartyName><cbc:Name>{escape(str(party.get('Name', '')))}</cbc:Name></cac:PartyName>"
            f"<cac:PartyTaxScheme><cbc:CompanyID>{vat}</cbc:CompanyID>"
            f"<cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:PartyTaxScheme>"
            f"</cac:Party></cac:{tag}>")


def order_ubl(order: dict[str, Any]) -> bytes:
    """A Peppol BIS Billing 3.0 invoice/credit note in its SBDH envelope, as Billit keeps it."""
    credit = order.get("OrderType") == "CreditNote"
    root = "CreditNote" if credit else "Invoice"
    ns = f"urn:oasis:names:specification:ubl:schema:xsd:{root}-2"
    currency = escape(str(order.get("Currency", "EUR")))

    def amount(tag: str, value: Any) -> str:
        return f"<cbc:{tag} currencyID=\"{currency}\">{escape(_amount(value))}</cbc:{tag}>"

    body = (
        f"<{root} xmlns=\"{ns}\" "
        "xmlns:cac=\"urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2\" "
        "xmlns:cbc=\"urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2\">"
        "<cbc:CustomizationID>urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"
        "</cbc:CustomizationID><cbc:ProfileID>urn:fdc:peppol.eu:2017:poacc:billing:01:1.0</cbc:ProfileID>"
        f"<cbc:ID>{escape(str(order.get('OrderNumber', '')))}</cbc:ID>"
        f"<cbc:IssueDate>{str(order.get('OrderDate', ''))[:10]}</cbc:IssueDate>"
        f"<cbc:DocumentCurrencyCode>{currency}</cbc:DocumentCurrencyCode>"
        + _party_xml("AccountingSupplierParty", order.get("Supplier") or {})
        + _party_xml("AccountingCustomerParty", order.get("Customer") or {})
        + "<cac:TaxTotal>" + amount("TaxAmount", order.get("TotalVAT", 0)) + "</cac:TaxTotal>"
        + "<cac:LegalMonetaryTotal>" + amount("TaxExclusiveAmount", order.get("TotalExcl", 0))
        + amount("TaxInclusiveAmount", order.get("TotalIncl", 0))
        + amount("PayableAmount", order.get("TotalIncl", 0)) + "</cac:LegalMonetaryTotal>"
        + f"</{root}>"
    )
    envelope = (
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
        "<StandardBusinessDocument xmlns=\"http://www.unece.org/cefact/namespaces/StandardBusinessDocumentHeader\">"
        "<StandardBusinessDocumentHeader><HeaderVersion>1.0</HeaderVersion>"
        f"<DocumentIdentification><Standard>{ns}</Standard><TypeVersion>2.1</TypeVersion>"
        f"<Type>{root}</Type></DocumentIdentification></StandardBusinessDocumentHeader>"
        + body + "</StandardBusinessDocument>"
    )
    return envelope.encode("utf-8")
