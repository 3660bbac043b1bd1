"""Attach files to a BC purchase document with the two-step upload, idempotently.

Step one POSTs the metadata (``parentId``, ``parentType``, ``fileName``) and gets an id with
``byteSize`` 0; step two PATCHes the raw bytes into ``…({id})/attachmentContent`` with
``If-Match: *``. Before either step the document's attachments are listed: a file already there
with the right size is left alone, and a record left empty by an interrupted upload gets its
content, so a repeat never adds a second copy. A file whose size matches is compared by
content too (its SHA-256, downloaded as a stream), so a same-sized change is not missed.

``ownership`` tells whose a draft is when several documents share a vendor and a vendor invoice
number: BC has no field to carry our document id, but the files we attached identify it.

``documentAttachments`` (the Attachments FactBox) is the default; a tenant that answers
"resource not found" for it gets ``attachments`` (the Incoming Document) instead, remembered
per account.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from typing import Any

from invoicesync import Context, Document, FileRef, OutcomeUnknown

from .client import BusinessCentral, NotFoundError
from .documents import Kind
from .files import attachment_name, attachment_names

DOCUMENT_ATTACHMENTS = "documentAttachments"
INCOMING_ATTACHMENTS = "attachments"
_FALLBACK_KEY = "attachment_entity"
_MISSING_ENTITY_CODES = {"BadRequest_ResourceNotFound", "BadRequest_NotFound", None}
#: The Incoming Document ``attachments`` entity only knows these purchase parent types.
_INCOMING_PARENT_TYPES = {"Purchase Invoice"}


class AttachmentError(Exception):
    """An attachment cannot be made for a reason no retry will fix."""


class Ownership(enum.Enum):
    MINE = "mine"  #: it carries this document's PDF, byte for byte
    UNFINISHED = "unfinished"  #: no complete file of anyone else: a draft whose upload was cut short
    OTHER = "other"  #: it carries another document's file


class Attacher:
    def __init__(self, bc: BusinessCentral, company: str, ctx: Context, preferred: str) -> None:
        self.bc = bc
        self.company = company
        self.ctx = ctx
        remembered = ctx.kv.get(_FALLBACK_KEY)
        self.entity = remembered if preferred == DOCUMENT_ATTACHMENTS and remembered else preferred
        #: SHA-256 of attachment contents already read, by (attachment id, etag).
        self._hashes: dict[tuple[str, str], str | None] = {}

    def check_supported(self, kind: Kind) -> None:
        """Refuse before creating a draft that could never get its file attached."""
        if self.entity == INCOMING_ATTACHMENTS and kind.parent_type not in _INCOMING_PARENT_TYPES:
            raise AttachmentError(
                f"this tenant has no documentAttachments, and the attachments (Incoming Document) entity "
                f"cannot hold files of a {kind.label}")

    def attach(self, kind: Kind, parent_id: str, files: list[FileRef]) -> tuple[dict[str, str], bool]:
        """Make sure every file is attached. Returns ``({fileName: attachment id}, wrote_anything)``."""
        existing = self._list(parent_id)
        self.check_supported(kind)
        ids: dict[str, str] = {}
        wrote = False
        for file, name in attachment_names(files).items():
            record = existing.get(name)
            if record is None:
                record = self._create(kind, parent_id, name)
                wrote = True
            if not self._holds(record, file):
                self.bc.upload_content(self.company, self.entity, record["id"], file.media_type,
                                       self._chunks(file))
                wrote = True
            ids[name] = str(record["id"])
        return ids, wrote

    def outdated(self, parent_id: str, files: list[FileRef]) -> list[str]:
        """Names of the files the document's attachments do not hold as they are now (read only)."""
        existing = self._list(parent_id)
        # A service that cannot show the content back: the same size counts as the same file here,
        # since this only decides what to report, never what to overwrite.
        return [name for f, name in attachment_names(files).items() if name not in existing
                or not self._holds(existing[name], f, unreadable=True)]

    def remove(self, parent_id: str, attachment_ids: set[str]) -> int:
        """Delete those of ``parent_id``'s attachments whose id is given (records we made earlier for
        files the document no longer has). Only records still hanging on this parent are touched."""
        wanted = {i.lower() for i in attachment_ids}
        if not wanted:
            return 0
        removed = 0
        for record in self.bc.find(self.company, self.entity, f"parentId eq {parent_id}"):
            if str(record.get("id", "")).lower() in wanted \
                    and str(record.get("parentId", parent_id)).lower() == parent_id.lower():
                try:
                    self.bc.delete(self.company, f"{self.entity}({record['id']})")
                except NotFoundError:
                    pass  # already gone: a run before us got that far
                removed += 1
        return removed

    def ownership(self, parent_id: str, document: Document) -> Ownership:
        """Whose draft ``parent_id`` is, judged by what is attached to it."""
        existing = self._list(parent_id)
        pdf = document.pdf or (document.files[0] if document.files else None)
        # Where the service cannot show the content, our file name with our size is the best evidence.
        names = attachment_names(document.files)
        pdf_name = (names.get(pdf) or attachment_name(pdf)) if pdf is not None else ""
        if pdf is not None and pdf_name in existing and self._holds(existing[pdf_name], pdf, unreadable=True):
            return Ownership.MINE
        # Anything complete that is not ours (or our file name with other bytes) is someone else's.
        ours = set(names.values()) - {pdf_name}
        if any(int(a.get("byteSize") or 0) > 0 for name, a in existing.items() if name not in ours):
            return Ownership.OTHER
        return Ownership.UNFINISHED

    def _holds(self, record: dict[str, Any], file: FileRef, *, unreadable: bool = False) -> bool:
        """Whether the attachment already has exactly this file's bytes (size first, then hash).

        ``unreadable`` is the answer when the service does not serve the content back: ``False``
        (upload again: the PATCH replaces the content, so that is safe) unless told otherwise.
        """
        if int(record.get("byteSize") or 0) != file.size:
            return False
        key = (str(record["id"]), str(record.get("@odata.etag", "")))
        if key not in self._hashes:
            self._hashes[key] = self.bc.content_sha256(self.company, self.entity, key[0])
        digest = self._hashes[key]
        return unreadable if digest is None else digest == file.sha256

    def _chunks(self, file: FileRef) -> Callable[[], Iterator[bytes]]:
        # Re-callable, so a retried PATCH streams the file again from the start.
        return lambda: self.ctx.blobs.iter_chunks(file.sha256)

    def _list(self, parent_id: str) -> dict[str, dict[str, Any]]:
        try:
            found = self.bc.find(self.company, self.entity, f"parentId eq {parent_id}")
        except NotFoundError as exc:
            # Only "no such entity set" means an older tenant; a missing record or company does not.
            if self.entity != DOCUMENT_ATTACHMENTS or exc.code not in _MISSING_ENTITY_CODES:
                raise
            # An older tenant without documentAttachments: use the Incoming Document entity.
            self.ctx.log.info("documentAttachments is not available; falling back to attachments")
            self.entity = INCOMING_ATTACHMENTS
            self.ctx.kv.set(_FALLBACK_KEY, INCOMING_ATTACHMENTS)
            found = self.bc.find(self.company, self.entity, f"parentId eq {parent_id}")
        # GUIDs compare case-insensitively: services differ in the case they write them in.
        return {str(a.get("fileName")): a for a in found
                if str(a.get("parentId", parent_id)).lower() == parent_id.lower()}

    def _create(self, kind: Kind, parent_id: str, file_name: str) -> dict[str, Any]:
        body = {"parentId": parent_id, "parentType": kind.parent_type, "fileName": file_name}
        try:
            return self.bc.create(self.company, self.entity, body)
        except OutcomeUnknown:
            # The record may exist now; look before making another.
            record = self._list(parent_id).get(file_name)
            if record is None:
                raise
            return record
