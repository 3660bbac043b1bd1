"""Export purchase documents as Business Central drafts, exactly once, never burning a number.

For each document: find its vendor, then look for a draft that vendor already has with this
vendor invoice number and that is this document's (see ``finding``: another document may share
the number; a document the ledger already names is read by its id, so a corrected number still
finds it). Found → bring it up to date (``update``: a newer version's header fields, comment line
and files go into the draft; a posted one is left alone and the change reported as skipped) and
finish what an earlier, interrupted run left undone. Not found → create the draft, then attach the
files. If attaching fails, the draft is *kept* (deleting it would burn a number of BC's series on
every run of a file that keeps failing): the delivery fails naming it, and the next run finds it
(the ledger, or this account's note ``export:<document id>``) and retries only what is missing.
The note is written before the header is sent, with the vendor and number, so a draft whose
create was cut short (a kill, a lost answer, a 5xx after the commit) is found by that look-up and
reused even if the document's number has changed since. Nothing is ever posted:
``Microsoft.NAV.post`` is not called anywhere. Deletions are in ``deletion``.
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

from . import documents, files
from .attachments import Attacher, AttachmentError
from .client import BusinessCentral
from .deletion import Deleter
from .documents import KINDS, Kind
from .finding import DraftFinder
from .settings import Dynamics365Settings
from .update import DraftUpdater
from .vendors import VendorDirectory, normalise_vat

SALES_SKIPPED = "sales documents are not exported to Business Central"
#: Seconds before a document whose write had an unknown outcome is offered again in the same run
#: (it is looked up first, so nothing is sent twice).
UNKNOWN_OUTCOME_RETRY = 20.0


class Exporter:
    def __init__(self, bc: BusinessCentral, company: str, ctx: Context) -> None:
        self.bc = bc
        self.company = company
        self.ctx = ctx
        self.settings = ctx.settings_as(Dynamics365Settings)
        self.vendors = VendorDirectory(bc, company, self.settings.api_base)
        self.attacher = Attacher(bc, company, ctx, self.settings.attachment_entity)
        self.updater = DraftUpdater(bc, company, ctx, self.attacher)
        self.deleter = Deleter(bc, company, ctx, self.attacher)
        self.finder = DraftFinder(bc, company, ctx, self.attacher)

    def push(self, requests: list[PushRequest]) -> Iterator[Delivery]:
        for request in requests:
            # An AuthError (BC refusing the app itself) is not caught: every document would fail the
            # same way, so it stops the batch with what to fix.
            try:
                yield self._push_one(request)
            except OutcomeUnknown as exc:
                yield self._delivery(request, DeliveryStatus.FAILED, retry_after=UNKNOWN_OUTCOME_RETRY,
                                     message=f"{_label(request.document)}: {exc}; looked up and not found, "
                                     "so it is looked up again before anything is sent again")
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
        existing = self.finder.known(request, kind)
        if document.deleted:
            outcome = self.deleter.delete(request, kind, existing)
            return self._delivery(request, outcome.status, draft=outcome.draft, kind=kind, message=outcome.message,
                                  attachments=outcome.attachments)
        chosen, refused = files.choose(document.files, request.files, attach_ubl=self.settings.attach_ubl)
        delivery = self._export(request, kind, existing, chosen)
        if refused and delivery.message is not None:
            delivery.message += f"; not attached (Business Central does not take them): {', '.join(refused)}"
        return delivery

    def _export(self, request: PushRequest, kind: Kind, existing: dict[str, Any] | None,
                chosen: list[FileRef]) -> Delivery:
        document = request.document
        if existing is not None:
            if self.ctx.dry_run:
                return self._delivery(request, DeliveryStatus.PLANNED, draft=existing, kind=kind,
                                      message=f"already in Business Central as {existing.get('number')}; "
                                      "would be brought up to date")
            return self._bring_up_to_date(request, kind, existing, chosen)
        number = documents.vendor_document_number(document)
        vendor = self._vendor(document)
        if vendor is None:
            return self._delivery(request, DeliveryStatus.FAILED, message=_not_found(document))
        existing = self.finder.own(request, kind, vendor, number)
        if self.ctx.dry_run:
            what = (f"already in Business Central as {kind.label} {existing.get('number')}" if existing
                    else f"would create a draft {kind.label} for vendor {vendor.get('number')}")
            return self._delivery(request, DeliveryStatus.PLANNED, path=f"{kind.entity}/{number}", message=what)
        if existing is not None:
            return self._bring_up_to_date(request, kind, existing, chosen)
        return self._create(request, kind, vendor, number, chosen)

    def _vendor(self, document: Document) -> dict[str, Any] | None:
        try:
            vendor = self.vendors.find(document.counterparty)
        except DocumentError as exc:
            raise DocumentError(exc.reason, document=document.id, field=exc.field) from None
        if vendor is None and self.settings.create_missing_vendors and not self.ctx.dry_run:
            if not document.counterparty.name.strip():
                raise DocumentError("the supplier has no name, so no vendor can be created",
                                    document=document.id, field="counterparty.name")
            vendor = self.vendors.create(document.counterparty)
        return vendor

    def _create(self, request: PushRequest, kind: Kind, vendor: dict[str, Any], number: str,
                chosen: list[FileRef]) -> Delivery:
        document = request.document
        self.attacher.check_supported(kind)
        state_key = f"export:{document.id}"
        # Before the POST: the vendor and number to look the draft up by, should the create be cut short.
        self.ctx.kv.set(state_key, {"state": "creating", "entity": kind.entity, "number": number,
                                    "vendor": {k: vendor[k] for k in ("id", "number") if vendor.get(k)}})
        try:
            draft = self._create_header(kind, document, vendor, number)
        except OutcomeUnknown:
            found = self.finder.own(request, kind, vendor, number)
            if found is None:
                raise
            # Made after all (perhaps by the blank-currency trial): reconciled like any existing draft.
            self.ctx.kv.set(state_key, {"state": "created", "entity": kind.entity, "id": found["id"]})
            return self._bring_up_to_date(request, kind, found, chosen)
        self.ctx.kv.set(state_key, {"state": "created", "entity": kind.entity, "id": draft["id"]})
        try:
            attachments, _ = self._finish(kind, draft, document, chosen, fresh=True)
        except (RemoteError, AttachmentError) as exc:
            # The draft stays (and the note naming it): the next run attaches to it, with no new number.
            retry = UNKNOWN_OUTCOME_RETRY if isinstance(exc, OutcomeUnknown) else None
            return self._delivery(
                request, DeliveryStatus.FAILED, draft=draft, kind=kind, retry_after=retry,
                message=f"{_label(document)}: draft {draft.get('number')} created, but attaching failed ({exc}); "
                "the draft is kept and only the attachment is tried again on the next run")
        self.ctx.kv.delete(state_key)
        return self._delivery(request, DeliveryStatus.DELIVERED, draft=self._settled(kind, draft), kind=kind,
                              attachments=attachments, message=f"draft {kind.label} {draft.get('number')} created")

    def _settled(self, kind: Kind, draft: dict[str, Any]) -> dict[str, Any]:
        """The draft as BC holds it after our last write: its etag is what a deletion compares against."""
        return self.bc.get(self.company, f"{kind.entity}({draft['id']})")

    def _create_header(self, kind: Kind, document: Document, vendor: dict[str, Any], number: str) -> dict[str, Any]:
        """POST the draft's header. A refused ``currencyCode`` may be the company's local currency
        (BC keeps LCY blank, and not every service takes its code): then the header goes again
        without it, and the draft is kept only if BC reports this very currency for it."""
        lcy_key = f"local_currency:{self.company}"
        known_lcy = self.settings.local_currency or self.ctx.kv.get(lcy_key)
        body = documents.header(document, kind, vendor, number, known_lcy)
        try:
            return self.bc.create(self.company, kind.entity, body)
        except OutcomeUnknown:
            raise
        except RemoteError as exc:
            currency = body.get("currencyCode")
            if not currency or not documents.currency_refused(exc):
                raise
            refused = exc
        problem = (f"Business Central has no currency {currency} set up (and it is not the company's local "
                   "currency); add it under Currencies and run again "
                   f"(BC said: {refused})")
        if known_lcy:  # the local currency is known and this is not it: no trial draft (no number spent)
            raise DocumentError(problem, document=document.id, field="currency")
        draft = self.bc.create(self.company, kind.entity, {k: v for k, v in body.items() if k != "currencyCode"})
        reported = str(draft.get("currencyCode") or "").strip().upper()
        if reported:
            # A blank code is the local currency: whatever BC reports for it is the LCY, learnt once.
            self.ctx.kv.set(lcy_key, reported)
        if reported == currency:
            return draft
        try:
            self.bc.delete(self.company, f"{kind.entity}({draft['id']})")
        except RemoteError as exc:
            problem += f"; the trial draft {draft.get('number')} could not be removed ({exc})"
        raise DocumentError(problem, document=document.id, field="currency")

    def _bring_up_to_date(self, request: PushRequest, kind: Kind, existing: dict[str, Any],
                          chosen: list[FileRef]) -> Delivery:
        try:
            outcome = self.updater.update(request, kind, existing, chosen)
        except (RemoteError, AttachmentError) as exc:
            # Still this document's draft: keep naming it, so the next run goes straight back to it.
            self.ctx.kv.set(f"export:{request.document.id}", {"state": "created", "entity": kind.entity,
                                                               "id": existing["id"]})
            retry = UNKNOWN_OUTCOME_RETRY if isinstance(exc, OutcomeUnknown) else None
            return self._delivery(request, DeliveryStatus.FAILED, draft=existing, kind=kind, retry_after=retry,
                                  message=f"{_label(request.document)}: draft {existing.get('number')}: {exc}; "
                                  "the draft is kept and what is missing is tried again on the next run")
        draft = outcome.draft
        if outcome.status is DeliveryStatus.DELIVERED:
            draft = self._settled(kind, draft)
        return self._delivery(request, outcome.status, draft=draft, kind=kind,
                              attachments=outcome.attachments, message=outcome.message)

    def _finish(self, kind: Kind, draft: dict[str, Any], document: Document, chosen: list[FileRef], *,
                fresh: bool) -> tuple[dict[str, str], bool]:
        """Add what the draft should carry besides its header; idempotent. Returns (attachments, wrote)."""
        wrote = self.updater.sync_comment(kind, str(draft["id"]), document, fresh=fresh)
        attachments, attached = self.attacher.attach(kind, str(draft["id"]), chosen)
        return attachments, wrote or attached

    def _delivery(self, request: PushRequest, status: DeliveryStatus, *, message: str | None = None,
                  draft: dict[str, Any] | None = None, kind: Kind | None = None, path: str | None = None,
                  attachments: dict[str, str] | None = None, retry_after: float | None = None) -> Delivery:
        document = request.document
        extra: dict[str, Any] = {}
        if draft is not None and kind is not None:
            path = f"{kind.entity}/{draft.get('number')}"
            # The id again in ``extra``: a ``pending`` row after a crash keeps extra, not target_id.
            extra = {"entity": kind.entity, "id": draft.get("id"), "number": draft.get("number"),
                     "company": self.company,
                     "vendorNumber": draft.get("vendorNumber"), "attachment_entity": self.attacher.entity}
            # What a deletion compares with: changed since means someone edited the draft in BC.
            extra.update({"etag": draft.get("@odata.etag"), "lastModifiedDateTime": draft.get("lastModifiedDateTime")})
            if attachments is not None:
                extra["attachments"] = attachments
        return Delivery(document_id=document.id, target=self.ctx.account.name, version=document.version,
                        status=status, target_id=str(draft["id"]) if draft else None, target_path=path,
                        content_hash=document.pdf.sha256 if document.pdf else None, message=message, extra=extra,
                        retry_after=retry_after)


def _label(document: Document) -> str:
    return f"{document.kind.value} {document.number or document.source_id} ({document.counterparty.name})"


def _not_found(document: Document) -> str:
    party = document.counterparty
    vat = normalise_vat(party.vat_number) or "no VAT number"
    return (f"vendor not found: {party.name or '(no name)'}, VAT {vat}; add the vendor in Business Central "
            "(or enable create_missing_vendors) and run again")
