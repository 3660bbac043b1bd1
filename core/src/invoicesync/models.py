"""The document model: what every source produces and every target consumes.

Documents carry metadata only. File *content* lives in the content-addressed blob store
(:class:`invoicesync.state.BlobStore`); a :class:`FileRef` names it by sha256, so a document
can be passed around, stored and compared without ever holding a PDF in memory.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator


class Direction(StrEnum):
    SALES = "sales"
    PURCHASE = "purchase"


class DocumentKind(StrEnum):
    INVOICE = "invoice"
    CREDIT_NOTE = "credit_note"
    OFFER = "offer"
    ORDER = "order"
    DELIVERY_NOTE = "delivery_note"
    RECEIPT = "receipt"
    OTHER = "other"


class FileRole(StrEnum):
    PDF = "pdf"  #: the main, human-readable document
    UBL = "ubl"  #: the Peppol BIS / UBL XML
    ATTACHMENT = "attachment"


class FileRef(BaseModel):
    """One file of a document. ``sha256`` is the key into the blob store."""

    model_config = ConfigDict(frozen=True, cache_strings="keys")

    name: str
    media_type: str
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    role: FileRole = FileRole.ATTACHMENT
    source_id: str | None = None


class Party(BaseModel):
    """The other side of the document: the customer of a sale, the supplier of a purchase."""

    name: str = ""
    vat_number: str | None = None
    peppol_id: str | None = None
    #: Other names the source knows this party by (e.g. Billit's DisplayName beside its Name).
    other_names: list[str] = Field(default_factory=list)


class Company(BaseModel):
    """A company (legal entity) an account can reach; Billit calls its id PartyID."""

    id: str
    name: str
    vat_number: str | None = None


class AuthStart(BaseModel):
    """The first half of a browser login (``auth_begin``): where to send the person, and what the
    second half (``auth_complete``) needs to finish it. The caller keeps it on its own side: the
    PKCE ``verifier`` and ``data`` never go to the browser, and ``state`` is checked on the way back."""

    model_config = ConfigDict(frozen=True)

    #: The service's login page, with ``redirect_uri`` and ``state`` in it.
    url: str
    #: Unguessable and single-use: the answer must carry it back.
    state: str
    #: Exactly as sent in ``url`` (the code exchange must repeat it).
    redirect_uri: str
    verifier: str | None = Field(default=None, repr=False)
    #: Anything else the plugin needs between the two halves.
    data: dict[str, str] = Field(default_factory=dict, repr=False)


class WebhookSubscription(BaseModel):
    """What ``webhook_subscribe`` registered at the service for one company (API 3).

    ``ids`` are the service's own ids of the hooks (``webhook_unsubscribe`` gets them back);
    ``secrets`` the signing secrets the service gave: core keeps them in the secret store (keyring
    or the 0600 file), never in the state, and hands them to ``webhook_verify``."""

    ids: list[str]
    secrets: list[str] = Field(default_factory=list, repr=False)


class WebhookEvent(BaseModel):
    """One delivery that ``webhook_verify`` found genuine (API 3).

    ``signed_at`` is the time the service signed it (core refuses one outside its tolerance), and
    ``key`` identifies the delivery (the signature itself will do): core refuses a second delivery
    with the same key, so a captured request cannot be replayed. ``document_ids`` (the source's
    ids) are what changed, for the log; core syncs the whole company either way."""

    signed_at: datetime
    key: str
    document_ids: list[str] = Field(default_factory=list)


class Document(BaseModel):
    """An invoice, credit note or other business document, as imported from a source.

    ``id`` is stable across runs and unique across sources:
    ``"{source}:{account}:{company}:{source_id}"`` (see :meth:`make_id`).
    """

    # Cache only keys when parsing JSON: values are mostly unique per document, and a value cache
    # would fill with them as a long sync goes on.
    model_config = ConfigDict(cache_strings="keys")

    id: str
    source: str
    account: str
    company: Company
    source_id: str
    kind: DocumentKind = DocumentKind.INVOICE
    direction: Direction
    number: str = ""
    issue_date: date | None = None
    due_date: date | None = None
    currency: str = "EUR"
    amount_excl_vat: Decimal | None = None
    amount_vat: Decimal | None = None
    amount_incl_vat: Decimal | None = None
    counterparty: Party = Field(default_factory=Party)
    paid: bool | None = None
    modified_at: datetime | None = None
    deleted: bool = False
    files: list[FileRef] = Field(default_factory=list)
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)
    #: ``version``, once computed: a sync reads it ~8 times per document and target (queueing, the
    #: ledger's intent and outcome, the plugin's delivery), and each computation serialises the
    #: whole document. Assigning a field or ``model_copy(update=...)`` forgets it.
    _version: str | None = PrivateAttr(default=None)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in Document.model_fields and self.__pydantic_private__:
            self.__pydantic_private__["_version"] = None
        super().__setattr__(name, value)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Document:
        copied = super().model_copy(update=update, deep=deep)
        if update and copied.__pydantic_private__:
            copied.__pydantic_private__["_version"] = None
        return copied

    @field_validator("amount_excl_vat", "amount_vat", "amount_incl_vat", mode="before")
    @classmethod
    def _no_floats(cls, value: Any) -> Any:
        # A float has already lost the cents; refuse it rather than store 0.1 + 0.2.
        if isinstance(value, float):
            raise ValueError("amounts must be Decimal, int or str, never float")
        return value

    @staticmethod
    def make_id(source: str, account: str, company_id: str, source_id: str) -> str:
        return f"{source}:{account}:{company_id}:{source_id}"

    @property
    def pdf(self) -> FileRef | None:
        return next((f for f in self.files if f.role is FileRole.PDF), None)

    @property
    def ubl(self) -> FileRef | None:
        return next((f for f in self.files if f.role is FileRole.UBL), None)

    @property
    def version(self) -> str:
        """A hash of what a target would store: changes when a file or a booked field changes.

        Computed once: change a document by assigning its fields (or ``model_copy(update=...)``),
        not by mutating a nested value in place (``document.counterparty.name = ...``)."""
        version = self._version
        if version is None:
            version = self._version = self._compute_version()
        return version

    def _compute_version(self) -> str:
        payload = self.model_dump(mode="json", exclude={"raw", "modified_at"})
        # Left out while empty, so documents stored before the field existed keep their version.
        if not payload["counterparty"].get("other_names"):
            payload["counterparty"].pop("other_names", None)
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


class DocumentRef(BaseModel):
    """What ``list_documents`` yields: enough to fetch a document later, and to order the cursor."""

    source_id: str
    modified_at: datetime | None = None
    summary: dict[str, Any] = Field(default_factory=dict, repr=False)


class Deletion(BaseModel):
    """Yielded by ``list_documents`` when the source reports a document as deleted."""

    source_id: str
    deleted_at: datetime | None = None


class ListingError(BaseModel):
    """Yielded by ``list_documents`` for a listed item the plugin cannot use (no id, wrong type).

    The runner records it as a failure of that document and field, holds the company's cursor
    before it (so the item is listed again next run, and imported once the source fixes it), and
    goes on importing the items after it. ``source_id`` is ``None`` when the item has no usable id.
    """

    source_id: str | None = None
    field: str | None = None
    message: str


class Checkpoint(BaseModel):
    """Yielded by ``list_documents``: every item yielded before it is covered by ``cursor``.

    The runner stores ``cursor`` only after all those items are safely in the library (Singer
    STATE semantics), so a crash can never skip a document.
    """

    cursor: str


class AccountDirection(StrEnum):
    IMPORT = "import"
    EXPORT = "export"


class Account(BaseModel):
    """A connected source (import) or target (export). Secrets are never part of it."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    plugin: str
    direction: AccountDirection
    settings: dict[str, Any] = Field(default_factory=dict)
    companies: list[Company] = Field(default_factory=list)
    origin: Literal["state", "config"] = "state"


class PushRequest(BaseModel):
    """One document handed to a target, with what the ledger knows of its last delivery.

    ``files`` are the files of ``document`` this target should hold (all of them unless the
    account narrows it with its ``files`` export option; all of them too when a request is built
    without ``files``); a target writes every one of them, and only them.
    When ``document.deleted`` is set (API 2), the target applies its deletion policy instead and
    yields ``deleted``, ``skipped`` (kept, with the reason) or ``failed``.
    """

    document: Document
    previous: Delivery | None = None
    files: list[FileRef] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _all_files_by_default(cls, data: Any) -> Any:
        # Built without ``files`` (tests, scripts): every file of the document, as the core hands them.
        if isinstance(data, dict) and "files" not in data:
            document = data.get("document")
            files = document.files if isinstance(document, Document) else (
                document.get("files", []) if isinstance(document, dict) else [])
            data = {**data, "files": list(files)}
        return data


class DeliveryStatus(StrEnum):
    DELIVERED = "delivered"  #: written now
    UNCHANGED = "unchanged"  #: the target already holds this version; nothing written
    SKIPPED = "skipped"  #: the target does not take this document (policy); nothing written
    FAILED = "failed"
    PENDING = "pending"  #: intent recorded, outcome not yet known (a crash leaves this)
    PLANNED = "planned"  #: dry run: would be written
    DELETED = "deleted"  #: deleted at the source, and removed (or moved aside) at the target


class Delivery(BaseModel):
    """The outcome of one document at one target: the delivery ledger's row."""

    document_id: str
    target: str
    version: str = ""
    status: DeliveryStatus
    target_id: str | None = None
    target_path: str | None = None
    content_hash: str | None = None
    message: str | None = None
    at: datetime | None = None
    #: Plugin-specific facts worth keeping (a Dropbox rev, the UBL's path, a BC attachment id).
    extra: dict[str, Any] = Field(default_factory=dict)
    #: Set by the core, not the plugin: the fingerprint of the target's export options this outcome
    #: was decided under (``ExportOptions.fingerprint``). Another fingerprint offers the document again.
    export_options: str | None = None
    #: On a ``failed`` delivery: the failure is transient (write-lock contention, one throttled entry
    #: of a batch) and the document may be offered again after this many seconds, in this same run.
    #: Not stored; the runner retries a few times, then the failure stands until the next run.
    retry_after: float | None = Field(default=None, exclude=True)


PushRequest.model_rebuild()
