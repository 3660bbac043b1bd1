"""``localfs``: write each document's PDF, UBL and data into a local folder tree.

Writes are atomic (temp file, fsync, rename) and idempotent: a file already holding the same
bytes is left alone, so a re-run — or a run after a crash between the write and the ledger
record — writes nothing. A name taken by different content gets a `` (2)`` suffix, never an
overwrite of someone else's file.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Literal

from pydantic import Field

from ..context import Context, PluginInfo, PluginKind, Settings
from ..hookspecs import hookimpl
from ..models import Account, Company, Delivery, DeliveryStatus, Document, FileRef, PushRequest
from ..naming import DEFAULT_TEMPLATE, render_path, sibling, validate_template, with_suffix_number


class LocalFsSettings(Settings):
    root: Path = Field(description="The folder documents are written under")
    template: str = Field(DEFAULT_TEMPLATE, description="Path template, relative to root")
    write_data: bool = Field(True, description="Also write the document's data as JSON beside the PDF")
    on_change: Literal["overwrite", "keep_both", "skip"] = Field(
        "overwrite", description="When a document changes after it was written"
    )


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(
        api_version=(1, 2),  # the invoicesync plugin API this was written for
        kind=PluginKind.TARGET,
        title="Local folder",
        description="Writes PDFs, UBL XML and document data into a folder tree",
        settings=LocalFsSettings,
        batch_size=16,
        concurrency=2,
    )


@hookimpl
def auth(account: Account, ctx: Context) -> list[Company]:
    settings: LocalFsSettings = ctx.settings
    validate_template(settings.template)
    if not ctx.dry_run:
        settings.root.expanduser().mkdir(parents=True, exist_ok=True)
    return []


@hookimpl
def push_documents(account: Account, requests: list[PushRequest], ctx: Context) -> Iterator[Delivery]:
    settings: LocalFsSettings = ctx.settings
    # Plain strings, not Path objects, per document: pathlib interns every part it parses, which
    # would make memory grow with the number of documents written.
    root = str(settings.root.expanduser())
    for request in requests:
        document = request.document
        try:
            yield _push_one(root, settings, request, ctx)
        except OSError as exc:
            yield Delivery(document_id=document.id, target=account.name, version=document.version,
                           status=DeliveryStatus.FAILED, message=f"{type(exc).__name__}: {exc.strerror or exc}")


def _push_one(root: str, settings: LocalFsSettings, request: PushRequest, ctx: Context) -> Delivery:
    document = request.document
    main = document.pdf or document.ubl
    ext = "pdf" if document.pdf else "xml"
    planned = render_path(settings.template, document, ext=ext)
    # Documents that render to the same name choose among the same candidates: one at a time.
    with _name_lock(os.path.join(root, planned)):
        return _place_and_write(root, settings, request, ctx, main, planned)


def _place_and_write(root: str, settings: LocalFsSettings, request: PushRequest, ctx: Context,
                     main: FileRef | None, planned: str) -> Delivery:
    document = request.document
    # Files to write: (relative path, content source). The first one names the delivery.
    previous_path = request.previous.target_path if request.previous else None
    base = _place(root, planned, previous_path, _expected_sha(document, main), settings.on_change)
    if base is None:
        return _result(request, ctx.account.name, DeliveryStatus.SKIPPED, planned,
                       message="changed since it was written; on_change=skip keeps the old version")
    writes: list[tuple[str, FileRef | None]] = []
    if main is not None:
        writes.append((base, main))
    if document.pdf and document.ubl:
        writes.append((sibling(base, "xml"), document.ubl))
    if settings.write_data:
        writes.append((sibling(base, "json"), None))
    if ctx.dry_run:
        return _result(request, ctx.account.name, DeliveryStatus.PLANNED, base,
                       message="would write " + ", ".join(p for p, _ in writes))
    changed = False
    for rel, ref in writes:
        target = os.path.join(root, rel)
        if ref is not None:
            changed |= _write_if_different(target, ref.sha256, functools.partial(ctx.blobs.iter_chunks, ref.sha256))
        else:
            data = _data_json(document)
            changed |= _write_if_different(target, hashlib.sha256(data).hexdigest(), functools.partial(iter, [data]))
    status = DeliveryStatus.DELIVERED if changed else DeliveryStatus.UNCHANGED
    return _result(request, ctx.account.name, status, base, content_hash=main.sha256 if main else None,
                   extra={"files": [p for p, _ in writes]})


# Striped locks: bounded memory however many documents pass through.
_LOCKS = [threading.Lock() for _ in range(64)]


def _name_lock(path: str) -> threading.Lock:
    return _LOCKS[hash(path) % len(_LOCKS)]


def _expected_sha(document: Document, main: FileRef | None) -> str:
    return main.sha256 if main else hashlib.sha256(_data_json(document)).hexdigest()


def _place(root: str, planned: str, previous: str | None, sha: str, on_change: str) -> str | None:
    """Choose the path: our earlier path if we have one, else the first free or identical name."""
    if previous:
        current = _sha_of(os.path.join(root, previous))
        if current in (None, sha) or on_change == "overwrite":
            return previous
        if on_change == "skip":
            return None
    candidate, n = planned, 1
    while (existing := _sha_of(os.path.join(root, candidate))) is not None and existing != sha:
        n += 1
        candidate = with_suffix_number(planned, n)
    return candidate


def _sha_of(path: str) -> str | None:
    if not os.path.isfile(path):
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def _write_if_different(target: str, sha: str, chunks: Callable[[], Iterable[bytes]]) -> bool:
    if _sha_of(target) == sha:
        return False
    folder = os.path.dirname(target)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".invoicesync-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks():
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return True


def _data_json(document: Document) -> bytes:
    data = document.model_dump(mode="json", exclude={"raw"})
    return json.dumps(data, indent=2, sort_keys=True).encode()


def _result(request: PushRequest, account_name: str, status: DeliveryStatus, path: str | None,
            message: str | None = None, content_hash: str | None = None,
            extra: dict[str, object] | None = None) -> Delivery:
    return Delivery(document_id=request.document.id, target=account_name, version=request.document.version,
                    status=status, target_path=path, content_hash=content_hash, message=message,
                    target_id=path, extra=extra or {})
