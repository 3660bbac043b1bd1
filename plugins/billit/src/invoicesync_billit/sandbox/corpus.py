"""A corpus of bad input, seeded on demand (``BillitSandbox(bad_inputs=True)``, option
``bad_inputs``): what a client must survive one document at a time.

Each bad order is an ordinary order of the first company with one defect, on the wire only
(the stored order keeps its real values, so filters and sorting still work, as with a server
whose serialiser misbehaves): a listed item without OrderID, with a string OrderID, with a
LastModified that is a number; a full order with a wrong-typed amount; a PDF whose FileContent is
empty, an attachment whose FileContent is not base64, a PDF whose file is gone; and one order
with hostile names (``../../x`` as OrderNumber and file names with folders, control characters,
1,000 characters, ``nul``) that must import safely. ``fix()`` repairs them all, in place, without
touching LastModified, so a client proves it retries on its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .data import StoredFile

if TYPE_CHECKING:
    from .app import BillitSandbox


class _Omit:
    def __repr__(self) -> str:
        return "OMIT"


#: A garbled field value meaning "leave the field out of the answer".
OMIT: Any = _Omit()

HOSTILE_NAMES = ("../../x", "re\x07ceipt\x00\x1b[31m.pdf", "A" * 996 + ".pdf", "nul")


@dataclass
class BadInputs:
    """The bad orders of one sandbox: ``defects`` maps OrderID to (defect, field a client should name)."""

    app: BillitSandbox
    defects: dict[int, tuple[str, str]] = field(default_factory=dict)
    hostile: int = 0  #: the order with hostile names (it imports; its names must come out plain)
    _hidden: dict[str, StoredFile] = field(default_factory=dict)

    def seed(self) -> BadInputs:
        app = self.app

        def new(defect: str, where: str, **overrides: Any) -> dict[str, Any]:
            order = app.add_order(OrderType="Invoice", OrderDirection="Income", _no_pdf=False,
                                  **{"_extras": [], **overrides})
            self.defects[order["OrderID"]] = (defect, where)
            return order

        new("no OrderID in the listing", "OrderID")["_garbled_in_list"] = {"OrderID": OMIT}
        new("OrderID listed as a string", "OrderID")["_garbled_in_list"] = {"OrderID": "x-17"}
        new("LastModified listed as a number", "LastModified")["_garbled_in_list"] = {"LastModified": 20250101}
        new("TotalIncl is a string", "TotalIncl")["_garbled"] = {"TotalIncl": "12,50"}
        with app.data_lock:
            empty = new("empty PDF content", "OrderPDF/FileContent")
            app.files[empty["OrderPDF"]["FileID"]].damage = "empty"
            garbled = new("attachment content not base64", "Attachments[0]/FileContent", _extras=["specification"])
            app.files[garbled["Attachments"][0]["FileID"]].damage = "not-base64"
            gone = new("PDF file missing", "OrderPDF/FileID")
            self._hidden[gone["OrderPDF"]["FileID"]] = app.files.pop(gone["OrderPDF"]["FileID"])
            hostile = app.add_order(OrderType="Invoice", OrderDirection="Cost", OrderNumber="../../x", _extras=[])
            self.hostile = hostile["OrderID"]
            for name in HOSTILE_NAMES:
                stored = StoredFile(app.seeder.uuid(app.seeder.extras_rng), name, "application/pdf",
                                    lambda: [b"%PDF-1.4\n% a hostile name\n%%EOF\n"], hostile["OrderID"])
                app.files[stored.file_id] = stored
                hostile["Attachments"].append({"FileID": stored.file_id, "FileName": name})
        return self

    def fix(self) -> None:
        """Repair every defect in place (LastModified untouched)."""
        with self.app.data_lock:
            for order_id in self.defects:
                order = self.app.company().orders[order_id]
                order.pop("_garbled_in_list", None)
                order.pop("_garbled", None)
                for entry in [order.get("OrderPDF"), *order.get("Attachments", [])]:
                    stored = self.app.files.get(str((entry or {}).get("FileID")))
                    if stored is not None:
                        stored.damage = None
            self.app.files.update(self._hidden)
            self._hidden.clear()


def file_json_body(stored: StoredFile) -> Iterator[bytes]:
    """A damaged File answer: ``FileContent`` empty, or text that is not base64."""
    content = "" if stored.damage == "empty" else "%%% this is not base64 %%%"
    yield json.dumps({"FileID": stored.file_id, "FileName": stored.name, "MimeType": stored.mime,
                      "FileContent": content}).encode()

