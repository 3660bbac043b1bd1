"""Find the Business Central document that is this document's, if BC has one.

By id first: the ledger (``target_id``, or the id in a ``pending`` row's ``extra``) or this
account's note ``export:<document id>`` (written around every write). Then, for a create cut short
before its id was noted, by the vendor and number the note recorded before the POST. Last, by the
vendor and the vendor invoice number; since two source documents may share one, a hit counts only
when its id is known, when it carries this document's PDF byte for byte, or when it is an
unfinished draft carrying nobody else's file.
"""

from __future__ import annotations

from typing import Any

from invoicesync import Context, PushRequest

from .attachments import Attacher, Ownership
from .client import BusinessCentral, NotFoundError, odata_string
from .documents import Kind


class DraftFinder:
    def __init__(self, bc: BusinessCentral, company: str, ctx: Context, attacher: Attacher) -> None:
        self.bc = bc
        self.company = company
        self.ctx = ctx
        self.attacher = attacher

    def known(self, request: PushRequest, kind: Kind) -> dict[str, Any] | None:
        """The BC document the ledger (or this account's note of a write in flight) names, if it exists.

        A ``pending`` ledger row (a crash) has no ``target_id`` but keeps the last delivery's
        ``extra``, which carries the id too.
        """
        previous = request.previous
        note = self.ctx.kv.get(f"export:{request.document.id}") or {}
        ids = [note.get("id") if note.get("entity", kind.entity) == kind.entity else None]
        if previous is not None and previous.extra.get("entity", kind.entity) == kind.entity \
                and previous.extra.get("company", self.company) == self.company:
            ids += [previous.target_id, previous.extra.get("id")]
        for known in dict.fromkeys(str(i) for i in ids if i):
            try:
                return self.bc.get(self.company, f"{kind.entity}({known})")
            except NotFoundError:
                continue  # deleted in BC since: look it up by number, or make it again
        if note.get("state") == "creating" and note.get("entity", kind.entity) == kind.entity \
                and note.get("number") and note.get("vendor"):
            return self._cut_short(request, kind, note)
        return None

    def _cut_short(self, request: PushRequest, kind: Kind, note: dict[str, Any]) -> dict[str, Any] | None:
        """The draft a create cut short (killed, or its answer lost) may have left, found by the vendor and
        number the note recorded before the POST, so it is reused even if the document's number changed."""
        for candidate in self.lookup(kind, note["vendor"], str(note["number"])):
            if str(candidate.get("status", "Draft")) in {"Draft", "", " "} and \
                    self.attacher.ownership(str(candidate["id"]), request.document) is not Ownership.OTHER:
                return candidate
        return None

    def own(self, request: PushRequest, kind: Kind, vendor: dict[str, Any], number: str) -> dict[str, Any] | None:
        """This document's BC document (draft or posted), if BC has one.

        BC keys a vendor's invoices by vendor invoice number, but two source documents can share
        one (a supplier's numbering slip, the same bill received twice). Each gets its own draft,
        and BC's own duplicate check at posting leaves the choice to a person. So a hit counts as
        ours only when we know its id (the ledger, or this account's note of a create in flight),
        when it carries this document's PDF byte for byte, or, failing those, when it is an
        unfinished draft that carries nobody else's file (an upload cut short).
        """
        candidates = self.lookup(kind, vendor, number)
        if not candidates:
            return None
        # GUIDs compare case-insensitively: services differ in the case they write them in.
        known = {str(i).lower() for i in (request.previous.target_id if request.previous else None,
                                          (self.ctx.kv.get(f"export:{request.document.id}") or {}).get("id")) if i}
        for candidate in candidates:
            if str(candidate["id"]).lower() in known:
                return candidate
        unfinished = None
        for candidate in candidates:
            verdict = self.attacher.ownership(str(candidate["id"]), request.document)
            if verdict is Ownership.MINE:
                return candidate
            if verdict is Ownership.UNFINISHED and unfinished is None:
                unfinished = candidate
        return unfinished

    def lookup(self, kind: Kind, vendor: dict[str, Any], number: str) -> list[dict[str, Any]]:
        """The vendor's documents with this number (drafts and posted alike)."""
        vendor_clause = (f"vendorNumber eq {odata_string(vendor['number'])}" if vendor.get("number")
                         else f"vendorId eq {vendor['id']}")
        return self.bc.find(self.company, kind.entity, f"{vendor_clause} and {kind.number_field} eq "
                                                        f"{odata_string(number)}")
