"""``localfs``: write every file of each document, and its data, into a local folder tree.

The main file (the PDF; else the UBL; else the first file, e.g. the photo of a receipt) goes to
the template's path with its own extension; the UBL beside a PDF as ``.xml``; every attachment
beside it, named after the main file plus the attachment's own name (``…_INV-1_terms.pdf``).

Writes are atomic (temp file, fsync, rename), honour the umask, and are idempotent: a file
already holding the same bytes is left alone, so a re-run — or a run after a crash between the
write and the ledger record — writes nothing. A name taken by different content gets a `` (2)``
suffix, never an overwrite of someone else's file. Temp files a killed run left behind are
removed at the start of the next run (or worker), wherever they are under the root. A document
deleted at the source keeps its files (``on_delete = "keep"``) or has them moved under
``_deleted/`` (``"move"``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import Field

from ..context import Context, PluginInfo, PluginKind, Settings
from ..hookspecs import hookimpl
from ..models import Account, Company, Delivery, DeliveryStatus, Document, FileRef, PushRequest
from ..naming import (
    DEFAULT_TEMPLATE,
    file_ext,
    main_file,
    plan_files,
    render_path,
    sibling,
    validate_template,
    with_suffix_number,
)
from ._fsio import current_umask, free_path, move_aside, sha_of, sweep_stale_parts, write_if_different

log = logging.getLogger("invoicesync.localfs")

#: Where ``on_delete = "move"`` puts the files of a document deleted at the source, under the root.
DELETED_FOLDER = "_deleted"


class LocalFsSettings(Settings):
    root: Path = Field(description="The folder documents are written under")
    template: str = Field(DEFAULT_TEMPLATE, description="Path template, relative to root")
    write_data: bool = Field(True, description="Also write the document's data as JSON beside the PDF")
    on_change: Literal["overwrite", "keep_both", "skip"] = Field(
        "overwrite", description="When a document changes after it was written"
    )
    on_delete: Literal["keep", "move"] = Field(
        "keep", description="When a document is deleted at the source: keep its files, or move them to _deleted/"
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
    settings = ctx.settings_as(LocalFsSettings)
    validate_template(settings.template)
    if not ctx.dry_run:
        settings.root.expanduser().mkdir(parents=True, exist_ok=True)
    return []


@hookimpl
def push_documents(account: Account, requests: list[PushRequest], ctx: Context) -> Iterator[Delivery]:
    settings = ctx.settings_as(LocalFsSettings)
    # Plain strings, not Path objects, per document: pathlib interns every part it parses, which
    # would make memory grow with the number of documents written.
    root = str(settings.root.expanduser())
    umask = current_umask()
    if not ctx.dry_run:
        # A killed writer's temp file may sit where nothing is written again: walk the whole root
        # once per workspace (a run; a Celery worker's life), not per context, which a worker makes
        # per task: that made every task O(files under root). A worker killed mid-write is a new
        # process (and workspace) when it comes back, and its first task sweeps what it left.
        ctx.shared_resource(("localfs", "swept", root), functools.partial(_sweep, account.name, root))
    for request in requests:
        document = request.document
        try:
            if document.deleted:
                yield _delete_one(root, settings, request, ctx)
            else:
                yield _push_one(root, settings, request, ctx, umask)
        except OSError as exc:
            yield Delivery(document_id=document.id, target=account.name, version=document.version,
                           status=DeliveryStatus.FAILED, message=f"{type(exc).__name__}: {exc.strerror or exc}")


def _sweep(account: str, root: str) -> int:
    removed = sweep_stale_parts(root)
    if removed:
        log.info("%s: removed %d half-written file(s) a stopped run left under %s", account, removed, root)
    return removed


def _push_one(root: str, settings: LocalFsSettings, request: PushRequest, ctx: Context, umask: int) -> Delivery:
    main = main_file(request.files)
    planned = render_path(settings.template, request.document, ext=file_ext(main) if main else "json")
    # Documents that render to the same name choose among the same candidates: one at a time.
    with _name_lock(os.path.join(root, planned)):
        return _place_and_write(root, settings, request, ctx, main, planned, umask)


def _place_and_write(root: str, settings: LocalFsSettings, request: PushRequest, ctx: Context,
                     main: FileRef | None, planned: str, umask: int) -> Delivery:
    document = request.document
    previous = request.previous
    # A document restored after its files were moved to _deleted/ starts afresh at its template path.
    ours = [] if previous is None or previous.status is DeliveryStatus.DELETED else _written(previous)
    sha = main.sha256 if main else hashlib.sha256(_data_json(document)).hexdigest()
    base = _place(root, planned, ours[0] if ours else None, sha, settings.on_change)
    if base is None:
        return _result(request, ctx.account.name, DeliveryStatus.SKIPPED, planned,
                       message="changed since it was written; on_change=skip keeps the old version")
    # Every file, the main one first; then the data JSON. (path, file or None for the data)
    writes: list[tuple[str, FileRef | None]] = list(plan_files(base, request.files))
    if settings.write_data:
        writes.append((sibling(base, "json"), None))
    if ctx.dry_run:
        return _result(request, ctx.account.name, DeliveryStatus.PLANNED, base,
                       message="would write " + ", ".join(p for p, _ in writes))
    changed, written = False, []
    for rel, ref in writes:
        data = _data_json(document) if ref is None else b""
        file_sha = ref.sha256 if ref is not None else hashlib.sha256(data).hexdigest()
        if rel != base:  # the main file's name was chosen by _place; a companion must not take another's file
            rel = free_path(root, rel, file_sha, ours)
        chunks = (functools.partial(ctx.blobs.iter_chunks, ref.sha256) if ref is not None
                  else functools.partial(iter, [data]))
        changed |= write_if_different(os.path.join(root, rel), file_sha, chunks, umask=umask)
        written.append(rel)
    # Files an earlier delivery wrote that are no longer asked for (a narrower `files` option) stay
    # where they are, and stay this document's: a later deletion moves them too.
    kept = [p for p in ours if p not in written and os.path.isfile(os.path.join(root, p))]
    status = DeliveryStatus.DELIVERED if changed else DeliveryStatus.UNCHANGED
    return _result(request, ctx.account.name, status, base, content_hash=main.sha256 if main else None,
                   extra={"files": written + kept})


def _delete_one(root: str, settings: LocalFsSettings, request: PushRequest, ctx: Context) -> Delivery:
    """Apply ``on_delete`` to a document deleted at the source: keep its files, or move them aside."""
    paths = _written(request.previous)
    if settings.on_delete == "keep":
        return _result(request, ctx.account.name, DeliveryStatus.SKIPPED, None,
                       message="deleted at the source; on_delete = keep leaves its files in place")
    if ctx.dry_run:
        return _result(request, ctx.account.name, DeliveryStatus.PLANNED, paths[0] if paths else None,
                       message=f"would move {', '.join(paths) or 'nothing'} to {DELETED_FOLDER}/")
    moved = []
    for rel in paths:
        with _name_lock(os.path.join(root, rel)):
            if (destination := move_aside(root, rel, DELETED_FOLDER)) is not None:
                moved.append(destination)
    return _result(request, ctx.account.name, DeliveryStatus.DELETED, moved[0] if moved else None,
                   message=f"moved {len(moved)} file(s) to {DELETED_FOLDER}/", extra={"files": moved})


def _written(previous: Delivery | None) -> list[str]:
    """The paths an earlier delivery wrote, its main file first."""
    if previous is None:
        return []
    paths = [p for p in previous.extra.get("files") or [] if isinstance(p, str)]
    if previous.target_path and previous.target_path not in paths:
        paths.insert(0, previous.target_path)
    return paths


# Striped locks: bounded memory however many documents pass through.
_LOCKS = [threading.Lock() for _ in range(64)]


def _name_lock(path: str) -> threading.Lock:
    return _LOCKS[hash(path) % len(_LOCKS)]


def _place(root: str, planned: str, previous: str | None, sha: str, on_change: str) -> str | None:
    """Choose the path: our earlier path if we have one, else the first free or identical name."""
    if previous:
        current = sha_of(os.path.join(root, previous))
        if current in (None, sha) or on_change == "overwrite":
            return previous
        if on_change == "skip":
            return None
    candidate, n = planned, 1
    while (existing := sha_of(os.path.join(root, candidate))) is not None and existing != sha:
        n += 1
        candidate = with_suffix_number(planned, n)
    return candidate


def _data_json(document: Document) -> bytes:
    data = document.model_dump(mode="json", exclude={"raw"})
    return json.dumps(data, indent=2, sort_keys=True).encode()


def _result(request: PushRequest, account_name: str, status: DeliveryStatus, path: str | None,
            message: str | None = None, content_hash: str | None = None,
            extra: dict[str, object] | None = None) -> Delivery:
    return Delivery(document_id=request.document.id, target=account_name, version=request.document.version,
                    status=status, target_path=path, content_hash=content_hash, message=message,
                    target_id=path, extra=extra or {})
