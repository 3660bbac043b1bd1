"""Fetch one order in full, with its files: ``GET /v1/orders/{id}`` then ``GET /v1/files/{id}``.

The listing already names the order's PDF (``OrderPDF.FileID``), so that download starts beside
the detail GET; it is used only if the detail names the same FileID (Billit gives a regenerated
PDF a new one), else the detail's file is fetched: a stale PDF is never imported.
"""

from __future__ import annotations

import itertools
import logging
import mimetypes
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field
from typing import Any

import httpx
from invoicesync import (
    Account,
    Company,
    Document,
    DocumentError,
    DocumentRef,
    FileRef,
    FileRole,
    RemoteError,
    ServerError,
)
from invoicesync.state import BlobStore

from .client import SERVICE, BillitClient
from .filejson import WHOLE_ANSWER_MAX, FileFormatError, FileJsonScanner, decode_whole
from .listing import localize
from .mapping import DIRECTIONS, KINDS, FileEntry, OrderReader
from .schema import check_order_types

#: ``ctx.submit``: runs a call beside the caller on the account's shared threads.
Submit = Callable[..., Future[Any]]


def fetch_order(client: BillitClient, account: Account, company: Company, ref: DocumentRef,
                blobs: BlobStore, log: logging.Logger, *, submit: Submit | None = None) -> Document:
    if not ref.source_id.isdigit():
        raise DocumentError("a Billit OrderID is a number", document=f"order {ref.source_id}", field="OrderID")
    early = EarlyPdf.start(client, company.id, ref, blobs, submit)
    try:
        document = _fetch_order(client, account, company, ref, blobs, log, early)
    finally:
        early.discard()  # not used (another FileID, or the order failed): never left running
    return document


def _fetch_order(client: BillitClient, account: Account, company: Company, ref: DocumentRef,
                 blobs: BlobStore, log: logging.Logger, early: EarlyPdf) -> Document:
    try:
        order = client.get_json(f"/v1/orders/{ref.source_id}", party_id=company.id)
    except RemoteError as exc:
        if exc.status in (401, 403, 404):
            # Billit answers 401 for an order the login cannot see (deleted since it was listed,
            # or the company is out of reach); the next listing reports a deletion if it was one.
            raise DocumentError(f"Billit no longer gives this order for company {company.name} "
                                f"(PartyID {company.id}): {exc}", document=f"order {ref.source_id}") from None
        raise
    reader = OrderReader(order, ref.source_id)
    check_order_types(reader)
    order_id = reader.int32("OrderID", required=True)
    if str(order_id) != ref.source_id:
        raise reader.fail("OrderID", f"the requested id {ref.source_id}", order_id)
    kind = reader.enum("OrderType", KINDS)
    direction = reader.enum("OrderDirection", DIRECTIONS)
    entries = reader.files()  # checked before any download: a malformed order downloads nothing
    document = Document(
        id=Document.make_id(account.plugin, account.name, company.id, ref.source_id),
        source=account.plugin, account=account.name, company=company, source_id=ref.source_id,
        kind=kind, direction=direction,
        number=(reader.string("OrderNumber") or "").strip(),
        issue_date=reader.date("OrderDate"), due_date=reader.date("ExpiryDate"),
        currency=reader.currency(),
        amount_excl_vat=reader.decimal("TotalExcl"), amount_vat=reader.decimal("TotalVAT"),
        amount_incl_vat=reader.decimal("TotalIncl"),
        counterparty=reader.counterparty(direction), paid=reader.boolean("Paid"),
        modified_at=localize(reader.timestamp("LastModified"), order.get("LastModified")),
        raw=reader.raw(),
    )
    document.files = [download(client, company.id, entry, reader, blobs, early.take(entry)) for entry in entries]
    if document.pdf is None:
        # Still imported (a draft may have no PDF yet), but marked: `invoicesync documents` shows
        # "[no PDF]" and targets see the flag. INFO, not WARNING: a first sync of a company with
        # many drafts would otherwise bury the progress bars under one warning per order.
        document.raw["pdf_missing"] = True
        log.info("billit: %s has no OrderPDF; imported without a PDF", reader.label)
    return document


@dataclass
class Body:
    """One downloaded file in the blob store, and what its answer said about it."""

    sha: str
    size: int
    raw_type: str | None  # set when the answer is the file itself, not the File JSON
    content_found: bool
    fields: dict[str, Any] = field(default_factory=dict)


def fetch_body(client: BillitClient, party_id: str, file_id: str, blobs: BlobStore) -> Body:
    """One file's answer into the blob store: a small one read whole and decoded at once, any
    other streamed, ``FileContent`` base64-decoded piece by piece as it arrives."""
    with client.stream(f"/v1/files/{file_id}", party_id=party_id) as response:
        chunks, raw_type = file_body(response)
        if raw_type is not None:
            sha, size = blobs.write(chunks)
            return Body(sha, size, raw_type, False)
        whole, chunks = read_whole(response, chunks, WHOLE_ANSWER_MAX)
        plain = decode_whole(whole) if whole is not None else None
        if plain is not None:
            data, fields = plain
            sha, size = blobs.write([data])
            return Body(sha, size, None, True, fields)
        scanner = FileJsonScanner()
        sha, size = blobs.write(scanner.decode(chunks))
    return Body(sha, size, None, scanner.content_found, scanner.fields)


def read_whole(response: httpx.Response, chunks: Iterator[bytes], limit: int
               ) -> tuple[bytes | None, Iterator[bytes]]:
    """The whole body if it is at most ``limit`` bytes; else ``None`` and the chunks to stream,
    those already read first. A ``Content-Length`` over ``limit`` skips the attempt; without one
    (a chunked answer) at most ``limit`` bytes are held before streaming takes over."""
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        return None, chunks
    read: list[bytes] = []
    size = 0
    for chunk in chunks:
        read.append(chunk)
        size += len(chunk)
        if size > limit:
            return None, itertools.chain(read, chunks)
    body = b"".join(read)
    return body, iter([body])


class EarlyPdf:
    """The PDF download started from the listed ``OrderPDF.FileID`` while the detail is read."""

    def __init__(self, file_id: str | None = None, future: Future[Body] | None = None) -> None:
        self.file_id = file_id
        self.future = future

    @classmethod
    def start(cls, client: BillitClient, party_id: str, ref: DocumentRef, blobs: BlobStore,
              submit: Submit | None) -> EarlyPdf:
        listed = ref.summary.get("OrderPDF")
        file_id = canonical_uuid(listed.get("FileID")) if isinstance(listed, dict) else None
        if submit is None or file_id is None:
            return cls()  # nothing listed (a draft), or not a uuid: the detail decides
        return cls(file_id, submit(fetch_body, client, party_id, file_id, blobs))

    def take(self, entry: FileEntry) -> Future[Body] | None:
        """The early download if ``entry`` is the same file; it is then no longer ours to discard."""
        future = self.future
        if future is None or entry.role is not FileRole.PDF or entry.file_id != self.file_id:
            return None
        self.future = None
        return future

    def discard(self) -> None:
        """Cancel it if it has not started, else let it finish (its errors mean nothing now)."""
        future, self.future = self.future, None
        if future is not None and not future.cancel():
            try:
                future.result()
            except Exception:  # noqa: BLE001 - a file no one will use: its failure is moot
                pass


def canonical_uuid(value: Any) -> str | None:
    try:
        return str(uuid.UUID(value)) if isinstance(value, str) else None
    except ValueError:
        return None


def download(client: BillitClient, party_id: str, entry: FileEntry, reader: OrderReader,
             blobs: BlobStore, early: Future[Body] | None = None) -> FileRef:
    """The file ``entry`` names as a ``FileRef``: from ``early`` (the same file, already under
    way) or downloaded now."""
    try:
        body = _early_body(early) if early is not None else None
        if body is None:
            body = fetch_body(client, party_id, entry.file_id, blobs)
    except FileFormatError as exc:
        raise DocumentError(f"file {entry.file_id}: {exc}", document=reader.label,
                            field=f"{entry.field}/{exc.field}") from None
    except RemoteError as exc:
        if exc.status in (401, 403, 404):
            raise DocumentError(f"file {entry.file_id} ({entry.name or 'no name'}) is not available: {exc}",
                                document=reader.label,
                                field=f"{entry.field}/FileID") from None
        raise
    except httpx.HTTPError as exc:  # the body broke off after the headers: try again next run
        raise ServerError(f"GET /v1/files/{entry.file_id}: download interrupted ({type(exc).__name__})",
                          service=SERVICE) from exc
    sha, size, raw_type = body.sha, body.size, body.raw_type
    if raw_type is None and not body.content_found:
        raise DocumentError(f"file {entry.file_id} came without FileContent", document=reader.label,
                            field=f"{entry.field}/FileContent")
    if size == 0:
        # Never hand targets a 0-byte "PDF": fail the document (retried next run) instead.
        raise DocumentError(f"file {entry.file_id} ({entry.name or 'no name'}) came empty",
                            document=reader.label,
                            field=f"{entry.field}/FileContent" if raw_type is None else f"{entry.field}/FileID")
    if raw_type is not None:
        name = safe_file_name(entry.name, entry.file_id)
        return FileRef(name=name, media_type=media_type_of(raw_type, name), size=size, sha256=sha,
                       role=entry.role, source_id=entry.file_id)
    given = body.fields.get("FileName")
    name = safe_file_name(given if isinstance(given, str) and given.strip() else entry.name, entry.file_id)
    mime = body.fields.get("MimeType")
    return FileRef(name=name, media_type=media_type_of(mime if isinstance(mime, str) else None, name),
                   size=size, sha256=sha, role=entry.role, source_id=entry.file_id)


def _early_body(early: Future[Body]) -> Body | None:
    """The early download's result; ``None`` when it never ran (still queued behind other side
    work: fetching here is sooner than waiting; or cancelled as the run ends)."""
    if early.cancel():
        return None
    try:
        return early.result()
    except CancelledError:
        return None


#: Media types that say nothing about the file: the name's extension says more.
VAGUE_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream", "application/unknown"})
MAX_NAME = 200
KNOWN_TYPES = {
    "pdf": "application/pdf", "xml": "text/xml", "jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xls": "application/vnd.ms-excel",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "csv": "text/csv",
}


def media_type_of(given: str | None, name: str) -> str:
    """Billit's ``MimeType`` when it names a type; else the one the file name implies."""
    given = (given or "").split(";")[0].strip().lower()
    if given not in VAGUE_TYPES and "/" in given:
        return given
    extension = name.rpartition(".")[2].lower() if "." in name else ""
    # The types Billit's files come in, fixed here: the system's MIME table varies (and may lack .xlsx).
    return KNOWN_TYPES.get(extension) or mimetypes.guess_type(name)[0] or "application/octet-stream"


def safe_file_name(name: str | None, file_id: str) -> str:
    """A plain file name: no folders (``../../x``), no control characters, at most 200
    characters with the extension kept; the FileID when nothing is left. Targets still apply
    their own rules (reserved names such as ``nul`` on Windows)."""
    text = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(ch for ch in text if ch.isprintable()).strip().strip(".").strip()
    if len(text) > MAX_NAME:
        _, dot, extension = text.rpartition(".")
        extension = extension if dot and 0 < len(extension) <= 10 else ""
        text = text[:MAX_NAME - len(extension) - 1].rstrip() + ("." + extension if extension else "")
    return text or f"{file_id}.bin"


def file_body(response: httpx.Response) -> tuple[Iterator[bytes], str | None]:
    """The answer's chunks, and ``None`` if it is Billit's documented File JSON, else the media
    type of a raw file body. Billit documents JSON with base64 ``FileContent`` (and so does its
    Swagger); one public client reads the answer as the raw file, so a body that is not JSON (it
    does not start with ``{`` and is not labelled JSON) is stored as the file itself."""
    chunks = response.iter_bytes()
    head = b""
    for chunk in chunks:
        head += chunk
        if head.strip() or len(head) > 4096:
            break
    rest = itertools.chain([head], chunks)
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if head.lstrip().startswith(b"{") or "json" in content_type or not head:
        return rest, None
    return rest, "" if content_type in ("", "application/octet-stream") else content_type
