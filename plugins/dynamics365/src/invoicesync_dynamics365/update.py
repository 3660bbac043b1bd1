"""Bring an exported Business Central document up to date with a newer version of its source.

A supplier corrects a bill after it was exported: a new PDF, another due date, a typo in the
number. While the BC document is still a draft, the header fields that differ are PATCHed with
``If-Match`` set to the etag just read (on ``Request_EntityChanged`` it is read again and tried once more), the comment
line is rewritten, a changed file gets its new bytes in its existing attachment record, and the
records we made for files the document no longer has are deleted *after* the new ones are in
place, so a crash never leaves the draft with fewer files. Once BC has posted the document (or it
is in review, i.e. released) nothing is touched: the change is reported as skipped, with why.

Every step compares BC's state with the document first, so a run after a crash finishes the job
and writes nothing twice (the account's note ``export:<document id>`` names the draft meanwhile).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from invoicesync import (
    Context,
    DeliveryStatus,
    Document,
    DocumentError,
    FileRef,
    OutcomeUnknown,
    PushRequest,
    RemoteError,
)

from . import documents
from .attachments import Attacher
from .client import BusinessCentral, entity_changed, odata_string
from .documents import MAX_VENDOR_DOCUMENT_NUMBER, Kind
from .settings import Dynamics365Settings

#: BC statuses of a purchase document that may still be edited. "In Review" is released or
#: awaiting approval (BC refuses header changes), "Open"/"Paid"/… are posted.
EDITABLE_STATUSES = {"Draft", "", " "}


@dataclass
class Outcome:
    status: DeliveryStatus
    draft: dict[str, Any]
    message: str
    attachments: dict[str, str] | None = None


@dataclass
class _HeaderDiff:
    body: dict[str, Any] = field(default_factory=dict)  #: what to PATCH
    changes: list[str] = field(default_factory=list)  #: what differs, in words
    kept: list[str] = field(default_factory=list)  #: differences BC cannot take, and why


class DraftUpdater:
    def __init__(self, bc: BusinessCentral, company: str, ctx: Context, attacher: Attacher) -> None:
        self.bc = bc
        self.company = company
        self.ctx = ctx
        self.settings = ctx.settings_as(Dynamics365Settings)
        self.attacher = attacher

    def update(self, request: PushRequest, kind: Kind, draft: dict[str, Any], files: list[FileRef]) -> Outcome:
        document = request.document
        number = draft.get("number")
        status = str(draft.get("status", "Draft"))
        if status not in EDITABLE_STATUSES:
            return self._leave_alone(request, kind, draft, files, status)
        note_key = f"export:{document.id}"
        # Before the first write, the draft's id and the attachment records the last delivery made:
        # a run after a crash finds both here even if the ledger row lost them (a failed batch).
        note = self.ctx.kv.get(note_key) or {}
        earlier = self._previous_attachments(request) | set(note.get("stale") or [])
        self.ctx.kv.set(note_key, {"state": "updating", "entity": kind.entity, "id": draft["id"],
                                   "attachment_entity": self.attacher.entity, "stale": sorted(earlier)})
        draft, header = self._patch_header(kind, draft, document)
        wrote = list(header.changes)
        if self.sync_comment(kind, str(draft["id"]), document, fresh=False):
            wrote.append("totals")
        attachments, attached = self.attacher.attach(kind, str(draft["id"]), files)
        if attached:
            wrote.append("attachments")
        stale = earlier - {i.lower() for i in attachments.values()}
        if self.attacher.remove(str(draft["id"]), stale):
            wrote.append("old attachment removed")
        self.ctx.kv.delete(note_key)
        kept = f"; {'; '.join(header.kept)}" if header.kept else ""
        if not wrote:
            return Outcome(DeliveryStatus.UNCHANGED, draft, f"already in Business Central as {number}{kept}",
                           attachments)
        settled_before = request.previous is not None and request.previous.status in {
            DeliveryStatus.DELIVERED, DeliveryStatus.UNCHANGED}
        what = "updated" if settled_before or header.changes else "completed"
        return Outcome(DeliveryStatus.DELIVERED, draft,
                       f"draft {number} {what}: {', '.join(wrote)}{kept}" if what == "updated"
                       else f"completed the existing draft {number}{kept}", attachments)

    # -- a document BC no longer lets us change --------------------------------------------------

    def _leave_alone(self, request: PushRequest, kind: Kind, draft: dict[str, Any], files: list[FileRef],
                     status: str) -> Outcome:
        """Never touch a posted (or released) document; say whether a change was left out."""
        number = draft.get("number")
        previous = (request.previous.extra.get("attachments") if request.previous else None) or None
        pending = self._header_diff(kind, draft, request.document, check_collision=False).changes
        pending += self.attacher.outdated(str(draft["id"]), files)
        if self.settings.lines == "comment" and self._comment_differs(kind, str(draft["id"]), request.document):
            pending.append("totals")
        if not pending:
            return Outcome(DeliveryStatus.UNCHANGED, draft,
                           f"already in Business Central ({status}); left as it is", previous)
        where = ("in review in Business Central (released or awaiting approval)" if status == "In Review"
                 else "already posted in Business Central")
        return Outcome(DeliveryStatus.SKIPPED, draft,
                       f"{kind.label} {number} is {where} ({status}); the change was not applied "
                       f"({', '.join(pending)})", previous)

    # -- header ----------------------------------------------------------------------------------

    def _patch_header(self, kind: Kind, draft: dict[str, Any], document: Document) -> tuple[dict[str, Any],
                                                                                             _HeaderDiff]:
        path = f"{kind.entity}({draft['id']})"
        for attempt in (1, 2):
            diff = self._header_diff(kind, draft, document, check_collision=True)
            if not diff.body:
                return draft, diff
            etag = draft.get("@odata.etag") or self.bc.get(self.company, path).get("@odata.etag") or "*"
            try:
                return self._send(kind, draft, diff.body, str(etag), document), diff
            except RemoteError as exc:
                if not entity_changed(exc) or attempt == 2:
                    raise
                # Someone changed the draft since we read it: read it again, work out the difference anew.
                draft = self.bc.get(self.company, path)
                if str(draft.get("status", "Draft")) not in EDITABLE_STATUSES:
                    raise DocumentError(f"{kind.label} {draft.get('number')} was posted in Business Central "
                                        "while it was being updated; the change was not applied",
                                        document=document.id) from None
        raise AssertionError("unreachable")

    def _header_diff(self, kind: Kind, draft: dict[str, Any], document: Document, *,
                     check_collision: bool) -> _HeaderDiff:
        diff = _HeaderDiff()
        for name, value, label in ((kind.date_field, document.issue_date, "date"),
                                   ("dueDate", document.due_date, "due date")):
            current = str(draft.get(name) or "")[:10]
            if value is not None and current != value.isoformat():
                diff.body[name] = value.isoformat()
                diff.changes.append(f"{label} {current or '-'} → {value.isoformat()}")
        self._number_diff(kind, draft, document, diff, check_collision)
        self._currency_diff(draft, document, diff)
        return diff

    def _number_diff(self, kind: Kind, draft: dict[str, Any], document: Document, diff: _HeaderDiff,
                     check_collision: bool) -> None:
        new, current = document.number.strip(), str(draft.get(kind.number_field) or "")
        if not new or new == current:
            return
        if len(new) > MAX_VENDOR_DOCUMENT_NUMBER:
            diff.kept.append(f"the new number {new!r} is longer than Business Central's "
                             f"{MAX_VENDOR_DOCUMENT_NUMBER} characters, so it keeps {current!r}")
            return
        if check_collision and self._taken(kind, draft, new):
            diff.kept.append(f"this vendor already has another document with number {new!r} in Business "
                             f"Central, so it keeps {current!r}")
            return
        diff.body[kind.number_field] = new
        diff.changes.append(f"number {current} → {new}")

    def _taken(self, kind: Kind, draft: dict[str, Any], number: str) -> bool:
        vendor = (f"vendorNumber eq {odata_string(str(draft['vendorNumber']))}" if draft.get("vendorNumber")
                  else f"vendorId eq {draft['vendorId']}")
        others = self.bc.find(self.company, kind.entity, f"{vendor} and {kind.number_field} eq {odata_string(number)}")
        return any(str(o.get("id", "")).lower() != str(draft["id"]).lower() for o in others)

    def _currency_diff(self, draft: dict[str, Any], document: Document, diff: _HeaderDiff) -> None:
        wanted = (document.currency or "").strip().upper()
        lcy = (self.settings.local_currency or self.ctx.kv.get(f"local_currency:{self.company}") or "").upper()
        current = str(draft.get("currencyCode") or "").strip().upper() or lcy
        if not wanted or not current or wanted == current:
            return  # a blank code with the local currency unknown: nothing to compare against
        # The local currency is written as BC keeps it, a blank code.
        diff.body["currencyCode"] = "" if wanted == lcy else wanted
        diff.changes.append(f"currency {current} → {wanted}")

    def _send(self, kind: Kind, draft: dict[str, Any], body: dict[str, Any], etag: str,
              document: Document) -> dict[str, Any]:
        """PATCH the header. A refused code may be the local currency (see ``Exporter._create_header``):
        sent again blank, kept only if BC then reports this very currency, else put back."""
        path = f"{kind.entity}({draft['id']})"
        try:
            return self.bc.patch(self.company, path, body, etag) or self.bc.get(self.company, path)
        except RemoteError as exc:
            currency = body.get("currencyCode")
            if not currency or not documents.currency_refused(exc):
                raise
            refused = exc
        patched = self.bc.patch(self.company, path, {**body, "currencyCode": ""}, etag) \
            or self.bc.get(self.company, path)
        reported = str(patched.get("currencyCode") or "").strip().upper()
        if reported == currency:
            self.ctx.kv.set(f"local_currency:{self.company}", currency)
            return patched
        problem = (f"Business Central has no currency {currency} set up (and it is not the company's local "
                   f"currency); add it under Currencies and run again (BC said: {refused})")
        old = str(draft.get("currencyCode") or "").strip().upper()
        if old and old != reported:
            try:
                self.bc.patch(self.company, path, {"currencyCode": old}, str(patched.get("@odata.etag") or "*"))
            except RemoteError as exc:
                problem += f"; its currency could not be set back to {old} ({exc})"
        raise DocumentError(problem, document=document.id, field="currency")

    # -- comment line and attachments ------------------------------------------------------------

    def sync_comment(self, kind: Kind, draft_id: str, document: Document, *, fresh: bool) -> bool:
        """Make the optional comment line say what the document says now. Returns whether it wrote."""
        if self.settings.lines != "comment":
            return False
        wanted = documents.comment_line(document)
        lines = [] if fresh else self.bc.lines(self.company, kind.entity, draft_id, kind.lines)
        ours = next((line for line in lines if documents.is_our_comment(line)), None)
        if ours is None:
            try:
                self.bc.create(self.company, f"{kind.entity}({draft_id})/{kind.lines}", wanted)
            except OutcomeUnknown:
                # The line may have been made (a 5xx after the commit): look before adding another.
                if self._our_comment(kind, draft_id) is None:
                    raise
            return True
        if ours.get("description") == wanted["description"]:
            return False
        try:
            self.bc.patch(self.company, f"{kind.entity}({draft_id})/{kind.lines}({ours['id']})",
                          {"description": wanted["description"]}, str(ours.get("@odata.etag") or "*"))
        except RemoteError as exc:
            # Changed: a resend of a PATCH that had landed, or someone edited the line; read it again.
            if not entity_changed(exc):
                raise
            again = self._our_comment(kind, draft_id)
            if again is None or again.get("description") != wanted["description"]:
                raise
        return True

    def _our_comment(self, kind: Kind, draft_id: str) -> dict[str, Any] | None:
        lines = self.bc.lines(self.company, kind.entity, draft_id, kind.lines)
        return next((line for line in lines if documents.is_our_comment(line)), None)

    def _comment_differs(self, kind: Kind, draft_id: str, document: Document) -> bool:
        wanted = documents.comment_line(document)["description"]
        lines = self.bc.lines(self.company, kind.entity, draft_id, kind.lines)
        ours = next((line for line in lines if documents.is_our_comment(line)), None)
        return ours is not None and ours.get("description") != wanted

    def _previous_attachments(self, request: PushRequest) -> set[str]:
        """Ids of the attachment records the last delivery made, on this attachment entity."""
        extra = request.previous.extra if request.previous else {}
        if extra.get("attachment_entity", self.attacher.entity) != self.attacher.entity:
            return set()
        return {str(i).lower() for i in (extra.get("attachments") or {}).values()}
