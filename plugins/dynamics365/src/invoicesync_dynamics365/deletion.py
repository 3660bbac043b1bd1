"""A document deleted at the source (hook API 2): remove its draft, if nobody has touched it since.

``on_delete = "delete"`` (the default) deletes the unposted draft we made, but only when it is
exactly as our last delivery left it: the same ``@odata.etag`` as the one kept in the delivery's
``extra`` (BC moves it on any header or line edit), and no attachment besides ours (a person's
file does not move the header's etag). The DELETE itself carries that etag in ``If-Match``, so an
edit between our look and our delete is refused by BC (``Request_EntityChanged``), not overwritten.
A posted draft, one in review, or one edited in BC is kept, and the delivery says why (``skipped``).
``on_delete = "keep"`` never deletes anything in Business Central.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from invoicesync import Context, DeliveryStatus, PushRequest, RemoteError

from .attachments import Attacher
from .client import BusinessCentral, NotFoundError, entity_changed
from .documents import Kind
from .settings import Dynamics365Settings

POSTED = "posted in BC; not deleted"
IN_REVIEW = "in review in BC; not deleted"
EDITED = "edited in BC since export; not deleted"


@dataclass
class Removal:
    status: DeliveryStatus
    message: str
    draft: dict[str, Any] | None = None
    attachments: dict[str, str] | None = None


class Deleter:
    def __init__(self, bc: BusinessCentral, company: str, ctx: Context, attacher: Attacher) -> None:
        self.bc = bc
        self.company = company
        self.ctx = ctx
        self.settings = ctx.settings_as(Dynamics365Settings)
        self.attacher = attacher

    def delete(self, request: PushRequest, kind: Kind, draft: dict[str, Any] | None) -> Removal:
        extra = request.previous.extra if request.previous else {}
        attachments = extra.get("attachments")
        if draft is None:
            # Never exported, or already gone from BC (deleted by a person, or by an earlier attempt).
            what = "already gone from Business Central" if request.previous and request.previous.target_id \
                else "nothing of it in Business Central"
            return Removal(DeliveryStatus.DELETED, f"deleted at the source; {what}")
        number = draft.get("number")
        if self.settings.on_delete == "keep":
            return Removal(DeliveryStatus.SKIPPED, f"deleted at the source; {kind.label} {number} kept in Business "
                           "Central (on_delete = keep)", draft, attachments)
        status = str(draft.get("status", "Draft"))
        if status not in {"Draft", "", " "}:
            reason = IN_REVIEW if status == "In Review" else POSTED
            return Removal(DeliveryStatus.SKIPPED, f"{kind.label} {number} {reason} ({status})", draft, attachments)
        if not self._unchanged(request, kind, draft, extra):
            return Removal(DeliveryStatus.SKIPPED, f"{kind.label} {number} {EDITED}", draft, attachments)
        if self.ctx.dry_run:
            return Removal(DeliveryStatus.PLANNED, f"would delete the draft {kind.label} {number}", draft)
        try:
            self.bc.delete(self.company, f"{kind.entity}({draft['id']})", etag=str(draft["@odata.etag"]))
        except RemoteError as exc:
            if not entity_changed(exc):
                raise
            return Removal(DeliveryStatus.SKIPPED, f"{kind.label} {number} {EDITED}", draft, attachments)
        self.ctx.kv.delete(f"export:{request.document.id}")
        return Removal(DeliveryStatus.DELETED, f"deleted at the source; draft {kind.label} {number} deleted")

    def _unchanged(self, request: PushRequest, kind: Kind, draft: dict[str, Any], extra: dict[str, Any]) -> bool:
        """Whether the draft is as our last delivery left it. With no etag kept (a create cut short
        by a kill), only an empty draft this account's note names counts: nothing of anyone's in it."""
        if not extra.get("etag"):
            return self._empty_orphan(request, kind, draft)
        if draft.get("@odata.etag") != extra["etag"]:
            return False
        if extra.get("attachment_entity", self.attacher.entity) != self.attacher.entity:
            return False
        ours = {str(i).lower() for i in (extra.get("attachments") or {}).values()}
        try:
            present = self.bc.find(self.company, self.attacher.entity, f"parentId eq {draft['id']}")
        except NotFoundError:
            return False
        return all(str(a.get("id", "")).lower() in ours for a in present
                   if str(a.get("parentId", draft["id"])).lower() == str(draft["id"]).lower())

    def _empty_orphan(self, request: PushRequest, kind: Kind, draft: dict[str, Any]) -> bool:
        note = self.ctx.kv.get(f"export:{request.document.id}") or {}
        named = str(note.get("id", "")).lower() == str(draft["id"]).lower() or note.get("state") == "creating"
        if not named:
            return False
        attachments = self.bc.find(self.company, self.attacher.entity, f"parentId eq {draft['id']}")
        return not attachments and not self.bc.lines(self.company, kind.entity, str(draft["id"]), kind.lines)
