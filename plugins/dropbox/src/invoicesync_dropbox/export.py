"""What one document becomes in Dropbox: where each of its files goes (``plan``), and the
``Delivery`` reported once they are settled (``delivery_of``), with the path, id, rev and
content_hash Dropbox confirmed. ``stream.py`` drives it: the upload and commit of the files.

Every file of ``request.files`` goes: the main one (the PDF, else the UBL, else e.g. the photo of
a receipt) at the template's path, the UBL beside a PDF as ``.xml``, each attachment beside it
named after the main file plus its own name. Each is looked up first, so a document offered again
after the account's ``files`` option widened gets only what is missing.

One document failing (a refused name, no space, a lost answer that turned out not to be a
write) becomes a ``failed`` delivery; the other documents carry on. When every failure of a
document is transient (lock contention on its entry of a batch commit, or a rate limit that
outlasted the core client's retries), the delivery carries ``retry_after`` and the runner offers
the document again in the same run. That is safe because every push looks up first: a file that
did land despite the failure is found by its ``content_hash`` and never written twice.

Once planned, a document is kept as an ``Order`` (its id, version, last delivery, files and the
main file's path from the template), not as the request: its files may wait up to
``commit_interval`` for a commit of up to 1,000, and the documents themselves need not wait with them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from invoicesync import (
    Context,
    Delivery,
    DeliveryStatus,
    DocumentError,
    FileRef,
    PushRequest,
    RemoteError,
)
from invoicesync.naming import file_ext, file_keys, main_file, plan_files

from .content_hash import content_hash_of_blob, content_hash_of_chunks
from .deletion import planned_deletion
from .index import FolderIndex
from .paths import DROPBOX_RULES, document_path, fit_path
from .placement import Earlier, Placer
from .settings import DropboxSettings
from .uploads import FileTask

#: Seconds before a transiently failed document is offered again in this run. A failed batch
#: entry carries no wait of its own (only a whole 429 answer has ``Retry-After``, and the core
#: client has honoured that already), so a short pause lets the other writer finish.
ENTRY_RETRY_AFTER = 1.0
NO_FILES = "the document has no file"


class Order(NamedTuple):
    """What the push keeps of a request once it has one: enough to place it (again, after a
    conflict) and to report it, without the document."""

    document_id: str
    version: str
    previous: Delivery | None
    files: tuple[FileRef, ...]
    #: Where the template puts the main file, or why it cannot say (``error``).
    first_path: str | None
    error: str | None = None


def order_of(request: PushRequest, settings: DropboxSettings) -> Order:
    document = request.document
    main = main_file(request.files)
    first, error = None, None
    if main is not None:
        try:
            first = document_path(settings.template, document, ext=file_ext(main))
        except DocumentError as exc:
            error = str(exc)
    return Order(document.id, document.version, request.previous, tuple(request.files), first, error)


@dataclass
class DocumentWork:
    order: Order
    main_path: str = ""
    tasks: list[FileTask] = field(default_factory=list)
    error: str | None = None
    skipped: str | None = None
    #: When skipped by policy: the earlier version's file, which stays this document's own.
    kept: list[dict[str, Any]] = field(default_factory=list)
    #: ``id(file)`` → its ledger key (``naming.file_keys``).
    keys: dict[int, str] = field(default_factory=dict)

    @property
    def uploads(self) -> list[FileTask]:
        """The files still to write: none when the document already failed or is skipped."""
        if self.error is not None or self.skipped:
            return []
        return [task for task in self.tasks if task.mode is not None and task.error is None]


def note_outcomes(index: FolderIndex | None, work: DocumentWork) -> None:
    """Writes Dropbox confirmed go into the index; a failed write's path (its outcome may be
    unknown, or someone else's file may be there now) is looked up next time."""
    if index is None:
        return
    for task in work.tasks:
        if task.written:
            index.record(task.metadata)
        elif task.error is not None:
            index.unsure(task.path)


def _layout(order: Order, main_path: str | None = None) -> list[tuple[str, FileRef]]:
    """Every file of ``order.files`` with its Dropbox path: the main file at the template's path
    (or ``main_path``, where it actually went), the others beside it (``naming.plan_files``)."""
    files = list(order.files)
    if main_file(files) is None:
        return []
    first = main_path or order.first_path
    if first is None:
        raise DocumentError(order.error or "the template gives no path")
    return [(path if index == 0 else fit_path(path, order.document_id), ref)
            for index, (path, ref) in enumerate(plan_files(first, files, DROPBOX_RULES))]


def planned(request: PushRequest, settings: DropboxSettings, ctx: Context) -> Delivery:
    if request.document.deleted:
        return planned_deletion(request, settings, ctx)
    order = order_of(request, settings)
    try:
        layout = _layout(order)
    except DocumentError as exc:
        return _result(order, ctx, DeliveryStatus.FAILED, message=str(exc))
    if not layout:
        return _result(order, ctx, DeliveryStatus.SKIPPED, message=NO_FILES)
    return _result(order, ctx, DeliveryStatus.PLANNED, path=layout[0][0],
                   message="would upload " + ", ".join(path for path, _ in layout))


def _earlier(order: Order) -> dict[str, Earlier]:
    """Where the ledger says this document's files are, by key (``naming.file_keys``): only files Dropbox
    confirmed (they have an id), so a failed attempt's path never counts as ours."""
    previous = order.previous
    if previous is None:
        return {}
    earlier = {}
    for item in previous.extra.get("files", []):
        if isinstance(item, dict) and item.get("path") and item.get("role") and item.get("id"):
            earlier[str(item.get("key") or item["role"])] = Earlier(str(item["path"]), item.get("content_hash"))
    settled = previous.status in (DeliveryStatus.DELIVERED, DeliveryStatus.UNCHANGED)
    if not earlier and settled and previous.target_path and previous.content_hash:
        earlier["main"] = Earlier(previous.target_path, previous.content_hash)
    return earlier


def plan(order: Order, placer: Placer, ctx: Context) -> DocumentWork:
    work = DocumentWork(order)
    earlier = _earlier(order)
    # How the ledger knows each file across runs (naming.file_keys): by the file object's identity,
    # as plan_files hands back the same objects.
    work.keys = {id(ref): key for ref, key in zip(order.files, file_keys(list(order.files)), strict=True)}
    try:
        layout = _layout(order)
        if not layout:
            work.skipped = NO_FILES
            return work
        main_key = work.keys[id(layout[0][1])]
        if not _place(work, *layout[0], earlier.get(main_key) or earlier.get("main"), placer, ctx):
            return work
        # The others go beside wherever the main file actually went (suffix included).
        for want, ref in _layout(order, work.main_path)[1:]:
            if not _place(work, want, ref, earlier.get(work.keys[id(ref)]), placer, ctx):
                return work
    except (RemoteError, DocumentError, FileExistsError, OSError) as exc:
        work.error = str(exc)
    return work


def _place(work: DocumentWork, want: str, ref: FileRef, before: Earlier | None, placer: Placer,
           ctx: Context) -> bool:
    """Choose where one file goes and add its upload task; ``False`` when the policy skips the document."""
    digest = _dropbox_hash(ref, ctx)
    placement = placer.place(want, before, digest)
    if not work.tasks:
        work.main_path = placement.path
    if placement.skipped:
        work.skipped = placement.skipped
        # The earlier version stays our file: keep its lineage for the next version.
        meta = placement.existing or {}
        work.kept = [{"role": ref.role.value, "key": work.keys[id(ref)], "name": ref.name,
                      "path": meta.get("path_display") or placement.path,
                      "id": meta.get("id"), "rev": meta.get("rev"), "content_hash": meta.get("content_hash")}]
        return False
    work.tasks.append(FileTask(role=ref.role, ref=ref, path=placement.path, content_hash=digest,
                               mode=placement.mode, metadata=placement.existing if placement.mode is None else None,
                               key=work.keys[id(ref)]))
    return True


def _dropbox_hash(ref: FileRef, ctx: Context) -> str:
    # Dropbox checks the hash we send against the bytes it gets, so a wrong blob never lands.
    return content_hash_of_blob(ref.sha256, ref.size) or content_hash_of_chunks(ctx.blobs.iter_chunks(ref.sha256))


def delivery_of(work: DocumentWork, ctx: Context) -> Delivery:
    request = work.order
    if work.error is not None:
        return _result(request, ctx, DeliveryStatus.FAILED, path=work.main_path or None, message=work.error)
    if work.skipped is not None:
        return _result(request, ctx, DeliveryStatus.SKIPPED, path=work.main_path or None, message=work.skipped,
                       extra={"files": work.kept} if work.kept else None)
    failures = [task.error for task in work.tasks if task.error]
    files: list[dict[str, Any]] = []
    for task in work.tasks:
        meta = task.metadata or {}
        files.append({"role": task.role.value, "key": task.key, "name": task.ref.name,
                      "path": meta.get("path_display") or task.path,
                      "id": meta.get("id"), "rev": meta.get("rev"), "content_hash": task.content_hash,
                      "size": task.ref.size, **task.extra})
    main = work.tasks[0]
    main_meta = main.metadata or {}
    # Files an earlier delivery confirmed that are no longer asked for (a narrower `files` option)
    # stay in Dropbox and stay this document's: a later deletion applies to them too.
    current = {item["key"] for item in files}
    files += [item for item in (request.previous.extra.get("files", []) if request.previous else [])
              if isinstance(item, dict) and item.get("id") and item.get("path")
              and str(item.get("key") or item.get("role")) not in current]
    extra: dict[str, Any] = {"rev": main_meta.get("rev"), "files": files}
    if failures:
        transient = all(task.transient for task in work.tasks if task.error)
        return _result(request, ctx, DeliveryStatus.FAILED, path=work.main_path, message="; ".join(failures),
                       extra={**extra, "files": _keep_lineage(files, request)},
                       retry_after=ENTRY_RETRY_AFTER if transient else None)
    written = any(task.written for task in work.tasks)
    return _result(request, ctx, DeliveryStatus.DELIVERED if written else DeliveryStatus.UNCHANGED,
                   path=main_meta.get("path_display") or work.main_path, target_id=main_meta.get("id"),
                   content_hash=main.content_hash, extra=extra)


def _keep_lineage(files: list[dict[str, Any]], request: Order) -> list[dict[str, Any]]:
    """The files of a failed attempt, for the ledger. A file Dropbox did not confirm (no id) is
    replaced by the confirmed file the previous row had for that role, so the next attempt (in
    this run or a later one) still knows the earlier version is ours: ``overwrite`` then still
    replaces it, instead of putting the new version beside it."""
    previous = request.previous.extra.get("files", []) if request.previous else []
    confirmed = {str(item.get("key") or item["role"]): item for item in previous
                 if isinstance(item, dict) and item.get("role") and item.get("path") and item.get("id")}
    return [item if item.get("id") or item["key"] not in confirmed else confirmed[item["key"]] for item in files]


def _result(order: Order, ctx: Context, status: DeliveryStatus, *, path: str | None = None,
            target_id: str | None = None, content_hash: str | None = None, message: str | None = None,
            extra: dict[str, Any] | None = None, retry_after: float | None = None) -> Delivery:
    return Delivery(document_id=order.document_id, target=ctx.account.name, version=order.version, status=status,
                    target_path=path, target_id=target_id, content_hash=content_hash, message=message,
                    extra=extra or {}, retry_after=retry_after)
