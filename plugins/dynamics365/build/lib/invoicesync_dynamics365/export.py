"""Export purchase documents as Business Central drafts, exactly once.

For each document: find its vendor, then look for a draft that vendor already has with this
vendor invoice number and that is this document's (see ``_own_draft``: another document may share
the number; a document the ledger already names is read by its id, so a corrected number still
finds it). Found → bring it up to date (``update``: a newer version's header fields, comment line
and files go into the draft; a posted one is left alone and the change reported as skipped) and
finish what an earlier, interrupted run left undone. Not found → create the draft, then attach the files;
if attaching fails, the draft just made is deleted again so nothing half-done stays behind (and
should even the delete fail, the next run finds the draft and repairs it). A create whose answer
was lost (``OutcomeUnknown``) is looked up at once, and again by every later run, before anything
is sent twice. Nothing is ever posted: ``Microsoft.NAV.post`` is not called anywhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from invoicesync import (
    Context,
    Delivery,
    DeliveryStatus,
    Direction,
    Document,
    DocumentError,
    FileRef,
    OutcomeUnknown,
    PushRequest,
    RemoteError,
)

from . import documents
from .attachments import Attacher, AttachmentError, Ownership
from .client import BusinessCentral, NotFoundError, odata_string
from .documents import KINDS, Kind
from .settings import Dynamics365Settings
from .update import DraftUpdater
from .vendors import VendorDirectory, normalise_vat

SALES_SKIPPED = "sales documents are not exported to Business Central"


class Exporter:
    def __init__(self, bc: BusinessCentral, company: str, ctx: Context) -> None:
        self.bc = bc
        self.company = company
        self.ctx = ctx
        self.settings: Dynamics365Settings = ctx.settings
        self.vendors = VendorDirectory(bc, company, self.settings.api_base)
        self.attacher = Attacher(bc, company, ctx, self.settings.attachment_entity)
        self.updater = DraftUpdater(bc, company, ctx, self.attacher)

    def push(self, requests: list[PushRequest]) -> Iterator[Delivery]:
        for request in requests:
            # An AuthError (BC refusing the app itself) is not caught: every document would fail the
            # same way, so it stops the batch with what to fix.
            try:
                yield self._push_one(request)
            except (DocumentError, AttachmentError) as exc:
                yield self._delivery(request, DeliveryStatus.FAILED, message=str(exc))
            except RemoteError as exc:
                yield self._delivery(request, DeliveryStatus.FAILED, message=f"{_label(request.document)}: {exc}")

    # -- one document --------------------------------------------------------------------------

    def _push_one(self, request: PushRequest) -> Delivery:
        document = request.document
        if document.direction is Direction.SALES:
            return self._delivery(request, DeliveryStatus.SKIPPED, message=SALES_SKIPPED)
        kind = KINDS.get(document.kind)
        if kind is None:
            return self._delivery(request, DeliveryStatus.SKIPPED,
                                  message=f"{document.kind.value} documents are not exported; "
                                  "only invoices and credit notes")
        # The document's BC record by id, when we know it: found even if its number changed since.
        existing = self._known_draft(request, kind)
        if existing is not None:
            if self.ctx.dry_run:
                return self._delivery(request, DeliveryStatus.PLANNED, draft=existing, kind=kind,
                                      message=f"already in Business Central as {existing.get('number')}; "
                                      "would be brought up to date")
            return self._bring_up_to_date(request, kind, existing)
        number = documents.vendor_document_number(document)
        vendor = self._vendor(document)
        if vendor is None:
            return self._delivery(request, DeliveryStatus.FAILED, message=_not_found(document))
        existing = self._own_draft(request, kind, vendor, number)
        if self.ctx.dry_run:
            what = (f"already in Business Central as {kind.label} {existing.get('number')}" if existing
                    else f"would create a draft {kind.label} for vendor {vendor.get('number')}")
            return self._delivery(request, DeliveryStatus.PLANNED, path=f"{kind.entity}/{number}", message=what)
        if existing is not None:
            return self._bring_up_to_date(request, kind, existing)
        return self._create(request, kind, vendor, number)

    def _known_draft(self, request: PushRequest, kind: Kind) -> dict[str, Any] | None:
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
        return None

    def _vendor(self, document: Document) -> dict[str, Any] | None:
        vendor = self.vendors.find(document.counterparty)
        if vendor is None and self.settings.create_missing_vendors and not self.ctx.dry_run:
            if not document.counterparty.name.strip():
                raise DocumentError("the supplier has no name, so no vendor can be created",
                                    document=document.id, field="counterparty.name")
            vendor = self.vendors.create(document.counterparty)
        return vendor

    def _own_draft(self, request: PushRequest, kind: Kind, vendor: dict[str, Any],
                   number: str) -> dict[str, Any] | None:
        """This document's BC document (draft or posted), if BC has one.

        BC keys a vendor's invoices by vendor invoice number, but two source documents can share
        one (a supplier's numbering slip, the same bill received twice). Each gets its own draft,
        and BC's own duplicate check at posting leaves the choice to a person. So a hit counts as
        ours only when we know its id (the ledger, or this account's note of a create in flight),
        when it carries this document's PDF byte for byte, or, failing those, when it is an
        unfinished draft that carries nobody else's file (an upload cut short).
        """
        candidates = self._lookup(kind, vendor, number)
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

    def _lookup(self, kind: Kind, vendor: dict[str, Any], number: str) -> list[dict[str, Any]]:
        """The vendor's documents with this number (drafts and posted alike)."""
        vendor_clause = (f"vendorNumber eq {odata_string(vendor['number'])}" if vendor.get("number")
                         else f"vendorId eq {vendor['id']}")
        return self.bc.find(self.company, kind.entity, f"{vendor_clause} and {kind.number_field} eq "
                                                        f"{odata_string(number)}")

    def _create(self, request: PushRequest, kind: Kind, vendor: dict[str, Any], number: str) -> Delivery:
        document = request.document
        self.attacher.check_supported(kind)
        state_key = f"export:{document.id}"
        self.ctx.kv.set(state_key, {"state": "creating", "entity": kind.entity, "number": number})
        fresh = True
        try:
            draft = self._create_header(kind, document, vendor, number)
        except OutcomeUnknown:
            found = self._own_draft(request, kind, vendor, number)
            if found is None:
                raise
            draft, fresh = found, False
        self.ctx.kv.set(state_key, {"state": "created", "entity": kind.entity, "id": draft["id"]})
        try:
            attachments, _ = self._finish(kind, draft, document, fresh=fresh)
        except (RemoteError, AttachmentError) as exc:
            return self._roll_back(request, kind, draft, exc)
        self.ctx.kv.delete(state_key)
        return self._delivery(request, DeliveryStatus.DELIVERED, draft=draft, kind=kind, attachments=attachments,
                              message=f"draft {kind.label} {draft.get('number')} created")

    def _create_header(self, kind: Kind, document: Document, vendor: dict[str, Any], number: str) -> dict[str, Any]:
        """POST the draft's header. A refused ``currencyCode`` may be the company's local currency
        (BC keeps LCY blank, and not every service takes its code): then the header goes again
        without it, and the draft is kept only if BC reports this very currency for it."""
        lcy_key = f"local_currency:{self.company}"
        known_lcy = self.settings.local_currency or self.ctx.kv.get(lcy_key)
        body = documents.header(document, kind, vendor, number, known_lcy)
        try:
            return self.bc.create(self.company, kind.entity, body)
        except RemoteError as exc:
            currency = body.get("currencyCode")
            if not currency or not documents.currency_refused(exc):
                raise
            refused = exc
        draft = self.bc.create(self.company, kind.entity, {k: v for k, v in body.items() if k != "currencyCode"})
        if str(draft.get("currencyCode") or "").strip().upper() == currency:
            self.ctx.kv.set(lcy_key, currency)
            return draft
        problem = (f"Business Central has no currency {currency} set up (and it is not the company's local "
                   "currency); add it under Currencies and run again "
                   f"(BC said: {refused})")
        try:
            self.bc.delete(self.company, f"{kind.entity}({draft['id']})")
        except RemoteError as exc:
            problem += f"; the trial draft {draft.get('number')} could not be removed ({exc})"
        raise DocumentError(problem, document=document.id, field="currency")

    def _bring_up_to_date(self, request: PushRequest, kind: Kind, existing: dict[str, Any]) -> Delivery:
        outcome = self.updater.update(request, kind, existing, self._files(request.document))
        return self._delivery(request, outcome.status, draft=outcome.draft, kind=kind,
                              attachments=outcome.attachments, message=outcome.message)

    def _finish(self, kind: Kind, draft: dict[str, Any], document: Document, *,
                fresh: bool) -> tuple[dict[str, str], bool]:
        """Add what the draft should carry besides its header; idempotent. Returns (attachments, wrote)."""
        wrote = self.updater.sync_comment(kind, str(draft["id"]), document, fresh=fresh)
        attachments, attached = self.attacher.attach(kind, str(draft["id"]), self._files(document))
        return attachments, wrote or attached

    def _roll_back(self, request: PushRequest, kind: Kind, draft: dict[str, Any], cause: Exception) -> Delivery:
        try:
            self.bc.delete(self.company, f"{kind.entity}({draft['id']})")
        except RemoteError as exc:
            return self._delivery(
                request, DeliveryStatus.FAILED, draft=draft, kind=kind,
                message=f"{_label(request.document)}: attaching failed ({cause}); the draft {draft.get('number')} "
                f"could not be removed either ({exc}); the next run completes it")
        self.ctx.kv.delete(f"export:{request.document.id}")
        return self._delivery(request, DeliveryStatus.FAILED,
                              message=f"{_label(request.document)}: attaching failed ({cause}); the draft "
                              f"{draft.get('number')} was removed again and will be made on the next run")

    def _files(self, document: Document) -> list[FileRef]:
        files = [document.pdf] if document.pdf else []
        if self.settings.attach_ubl and document.ubl:
            files.append(document.ubl)
        return [f for f in files if f is not None]

    def _delivery(self, request: PushRequest, status: DeliveryStatus, *, message: str | None = None,
                  draft: dict[str, Any] | None = None, kind: Kind | None = None, path: str | None = None,
                  attachments: dict[str, str] | None = None) -> Delivery:
        document = request.document
        extra: dict[str, Any] = {}
        if draft is not None and kind is not None:
            path = f"{kind.entity}/{draft.get('number')}"
            # The id again in ``extra``: a ``pending`` row after a crash keeps extra, not target_id.
            extra = {"entity": kind.entity, "id": draft.get("id"), "number": draft.get("number"),
                     "company": self.company,
                     "vendorNumber": draft.get("vendorNumber"), "attachment_entity": self.attacher.entity}
            if attachments is not None:
                extra["attachments"] = attachments
        return Delivery(document_id=document.id, target=self.ctx.account.name, version=document.version,
                        status=status, target_id=str(draft["id"]) if draft else None, target_path=path,
                        content_hash=document.pdf.sha256 if document.pdf else None, message=message, extra=extra)


def _label(document: Document) -> str:
    return f"{document.kind.value} {document.number or document.source_id} ({document.counterparty.name})"


def _not_found(document: Document) -> str:
    party = document.counterparty
    vat = normalise_vat(party.vat_number) or "no VAT number"
    return (f"vendor not found: {party.name or '(no name)'}, VAT {vat}; add the vendor in Business Central "
            "(or enable create_missing_vendors) and run again")
