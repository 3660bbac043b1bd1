"""What one target is handed: the core's half of the export contract (hook API 2).

For each document offered to a target account, decide from the ledger and the account's export
options whether it is already settled there, whether the core settles it itself (``skipped``
with the reason: filtered out, or a deletion the target cannot or need not apply), or which
``PushRequest`` — with which files — the plugin gets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..export_options import ExportOptions
from ..models import Delivery, DeliveryStatus, Document, PushRequest

#: Outcomes that need nothing more while the document's version and the export options stay.
SETTLED = frozenset({DeliveryStatus.DELIVERED, DeliveryStatus.UNCHANGED, DeliveryStatus.SKIPPED})
#: A deletion is settled once applied, or once the core decided the target keeps the document.
DELETION_SETTLED = SETTLED | {DeliveryStatus.DELETED}

DELETIONS_NOT_HANDLED = "deleted at the source; this target's plugin does not handle deletions"
DELETED_BEFORE_DELIVERY = "deleted at the source before it was delivered here"


@dataclass
class RequestBuilder:
    """Builds the requests of one target account. ``handles_deletions``: its plugin speaks API ≥ 2."""

    target: str
    options: ExportOptions
    handles_deletions: bool
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        self.fingerprint = self.options.fingerprint()

    def build(self, document: Document, previous: Delivery | None) -> PushRequest | Delivery | None:
        """``None``: settled already. A ``Delivery``: the core's own outcome, to record. A
        ``PushRequest``: hand it to the plugin."""
        if document.deleted:
            return self._deletion(document, previous)
        if (previous is not None and previous.status in SETTLED and previous.version == document.version
                and previous.export_options == self.fingerprint):
            return None
        if reason := self.options.exclusion(document):
            return self._skip(document, previous, reason)
        files = self.options.select(document.files)
        if document.files and not files:
            wanted = ", ".join(self.options.files or ())
            return self._skip(document, previous, f"has none of the files this target takes (files = {wanted})")
        return PushRequest(document=document, previous=previous, files=files)

    def _deletion(self, document: Document, previous: Delivery | None) -> PushRequest | Delivery | None:
        if previous is not None and previous.status in DELETION_SETTLED and previous.version == document.version:
            return None
        if not _ever_delivered(previous):
            return self._skip(document, previous, DELETED_BEFORE_DELIVERY)
        if not self.handles_deletions:
            return self._skip(document, previous, DELETIONS_NOT_HANDLED)
        # The files it was given, so the target can find what to remove or move aside.
        return PushRequest(document=document, previous=previous, files=self.options.select(document.files))

    def _skip(self, document: Document, previous: Delivery | None, reason: str) -> Delivery:
        # Keep the plugin's facts (paths, ids): a later change or deletion still needs them.
        return Delivery(document_id=document.id, target=self.target, version=document.version,
                        status=DeliveryStatus.SKIPPED, message=reason,
                        extra=previous.extra if previous else {})


def _ever_delivered(previous: Delivery | None) -> bool:
    """Whether the target may hold something of the document (a crash mid-write counts)."""
    if previous is None:
        return False
    if previous.status in {DeliveryStatus.DELIVERED, DeliveryStatus.UNCHANGED, DeliveryStatus.PENDING}:
        return True
    # The ledger keeps the last known path and id through later skips and failures.
    return bool(previous.target_path or previous.target_id)
