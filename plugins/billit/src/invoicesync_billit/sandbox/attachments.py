"""The extra files people attach in Billit, as real (small) files: general terms as a PDF, a
specification as an .xlsx workbook, a JPEG photo of a receipt; and purchase documents whose only
file is such a photo (a scanned receipt: no PDF, no UBL).

Which order gets which is drawn from a random generator of its own, so the seeded orders, their
ids and their PDF/UBL files are the same as without the extras.
"""

from __future__ import annotations

import io
import random
import struct
import zipfile
from collections.abc import Callable
from typing import Any
from xml.sax.saxutils import escape

from .files import make_pdf

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
JPEG = "image/jpeg"
PDF = "application/pdf"

#: An extra's kind -> (file name, media type, renderer of the order's snapshot).
EXTRAS: dict[str, tuple[str, str, Callable[[dict[str, Any]], bytes]]] = {}


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">HH", 0xFF00 | marker, len(payload) + 2) + payload


def tiny_jpeg(width: int = 64, height: int = 48, gray: int = 200) -> bytes:
    """A valid baseline JPEG of one flat gray: one component, every 8x8 block only its DC value.

    Huffman tables with a single one-bit code each ("0" = DC difference category 0, and "0" =
    end of block for AC) make every block after the first two bits; the first block carries the
    DC value itself."""
    blocks = ((width + 7) // 8) * ((height + 7) // 8)
    dc = 8 * (gray - 128)  # the FDCT's DC term of a flat block, with a quantizer of 1
    magnitude = abs(dc)
    category = magnitude.bit_length()
    value_bits = format(magnitude if dc >= 0 else (~magnitude) & ((1 << category) - 1), f"0{category}b") \
        if category else ""
    # DC table: category 0 -> "0", the first block's category -> "10"; AC table: EOB -> "0".
    dc_counts = bytes([1, 1] + [0] * 14) if category else bytes([1] + [0] * 15)
    dc_symbols = bytes([0, category]) if category else bytes([0])
    bits = ("10" + value_bits if category else "0") + "0" + "00" * (blocks - 1)
    bits += "1" * (-len(bits) % 8)
    scan = bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8)).replace(b"\xff", b"\xff\x00")
    return b"".join([
        b"\xff\xd8",
        _segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"),
        _segment(0xDB, b"\x00" + bytes([1] * 64)),
        _segment(0xC0, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00"),
        _segment(0xC4, b"\x00" + dc_counts + dc_symbols),
        _segment(0xC4, b"\x10" + bytes([1] + [0] * 15) + b"\x00"),
        _segment(0xDA, b"\x01\x01\x00\x00\x3f\x00"),
        scan,
        b"\xff\xd9",
    ])


def tiny_xlsx(rows: list[list[str]]) -> bytes:
    """A minimal but valid Office Open XML workbook with one sheet of inline strings."""
    cells = "".join(
        f'<row r="{r}">' + "".join(f'<c r="{chr(65 + c)}{r}" t="inlineStr"><is><t>{escape(text)}</t></is></c>'
                                   for c, text in enumerate(row)) + "</row>"
        for r, row in enumerate(rows, start=1))
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    parts = {
        "[Content_Types].xml": (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            '<Override PartName="/xl/worksheets/sheet1.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>'),
        "_rels/.rels": (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            f'<Relationship Id="rId1" Type="{rel}/officeDocument" Target="xl/workbook.xml"/></Relationships>'),
        "xl/workbook.xml": (
            f'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="{main}" xmlns:r="{rel}">'
            '<sheets><sheet name="Specification" sheetId="1" r:id="rId1"/></sheets></workbook>'),
        "xl/_rels/workbook.xml.rels": (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            f'<Relationship Id="rId1" Type="{rel}/worksheet" Target="worksheets/sheet1.xml"/></Relationships>'),
        "xl/worksheets/sheet1.xml": (
            f'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="{main}"><sheetData>{cells}</sheetData>'
            '</worksheet>'),
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in parts.items():
            info = zipfile.ZipInfo(name, date_time=(2025, 1, 1, 0, 0, 0))  # same bytes every time
            archive.writestr(info, text, zipfile.ZIP_DEFLATED)
    return out.getvalue()


def _terms(order: dict[str, Any]) -> bytes:
    return make_pdf(["General terms and conditions", f"Applicable to {order.get('OrderNumber', '')}",
                     "1. Payment within 30 days.", "2. Belgian law applies."])


def _specification(order: dict[str, Any]) -> bytes:
    rows = [["Description", "Quantity", "Total excl. VAT"]]
    rows += [[str(line.get("Description", "")), str(line.get("Quantity", "")), str(line.get("TotalExcl", ""))]
             for line in order.get("OrderLines") or []]
    return tiny_xlsx(rows)


def _receipt(order: dict[str, Any]) -> bytes:
    return tiny_jpeg(gray=150 + int(order.get("OrderID", 0)) % 100)


EXTRAS.update({
    "terms": ("general-terms.pdf", PDF, _terms),
    "specification": ("specification.xlsx", XLSX, _specification),
    "receipt": ("receipt-photo.jpg", JPEG, _receipt),
})


def choose_extras(order: dict[str, Any], rng: random.Random) -> list[str]:
    """Which extra files an order carries; an image-only purchase loses its PDF and UBL."""
    extras = []
    if order["OrderDirection"] == "Cost" and rng.random() < 0.12:
        order["_no_pdf"] = True  # a scanned receipt: the photo is all there is
        order.pop("ExternalProvider", None)
        return ["receipt"]
    if rng.random() < 0.2:
        extras.append("terms")
    if rng.random() < 0.12:
        extras.append("specification")
    if order["OrderDirection"] == "Cost" and rng.random() < 0.15:
        extras.append("receipt")
    return extras
