"""Documents deleted at the source: the account's ``on_delete`` policy, applied to the files the
ledger says this document has in Dropbox.

- ``keep`` (the default): nothing changes; the delivery is ``skipped`` with the reason.
- ``move``: each file moves to ``/_deleted`` + its path (``files/move_v2``, never over another
  file: Dropbox picks a free name).
- ``trash``: each file is deleted (``files/delete_v2``; Dropbox keeps deleted files restorable),
  only at the revision we wrote, so a file someone changed since is kept.

A file already gone counts as done; any other refusal fails the document, which is offered again.
"""

from __future__ import annotations

from typing import Any

from invoicesync import Context, Delivery, DeliveryStatus, DocumentError, PushRequest, RemoteError

from .client import DropboxClient
from .errors import DropboxApiError
from .index import FolderIndex
from .paths import fit_path
from .settings import DropboxSettings

DELETED_FOLDER = "/_deleted"
KEPT = "deleted at the source; on_delete = keep leaves its files in Dropbox"


def _recorded(request: PushRequest) -> list[dict[str, Any]]:
    """The files Dropbox confirmed for this document (they have an id), main first."""
    previous = request.previous
    if previous is None:
        return []
    files = [item for item in previous.extra.get("files", [])
             if isinstance(item, dict) and item.get("path") and item.get("id")]
    if not files and previous.target_path:
        files = [{"path": previous.target_path, "rev": previous.extra.get("rev")}]
    return files


def planned_deletion(request: PushRequest, settings: DropboxSettings, ctx: Context) -> Delivery:
    if settings.on_delete == "keep":
        return _result(request, ctx, DeliveryStatus.SKIPPED, message=KEPT)
    paths = [str(item["path"]) for item in _recorded(request)]
    verb = f"move to {DELETED_FOLDER}" if settings.on_delete == "move" else "delete"
    return _result(request, ctx, DeliveryStatus.PLANNED, path=paths[0] if paths else None,
                   message=f"would {verb}: {', '.join(paths) or 'nothing'}")


def apply_deletion(request: PushRequest, settings: DropboxSettings, client: DropboxClient, ctx: Context,
                   index: FolderIndex | None) -> Delivery:
    if index is not None and request.previous is not None:
        # The index is not told how a move or delete went: this document's paths are looked up next time.
        for item in request.previous.extra.get("files", []):
            if isinstance(item, dict) and isinstance(item.get("path"), str):
                index.unsure(item["path"])
    if settings.on_delete == "keep":
        return _result(request, ctx, DeliveryStatus.SKIPPED, message=KEPT)
    try:
        return _apply(request, settings, client, ctx)
    except (RemoteError, DocumentError) as exc:
        return _result(request, ctx, DeliveryStatus.FAILED, message=str(exc))


def _apply(request: PushRequest, settings: DropboxSettings, client: DropboxClient, ctx: Context) -> Delivery:
    after: list[dict[str, Any]] = []
    kept: list[str] = []
    for item in _recorded(request):
        path, rev = str(item["path"]), item.get("rev")
        if settings.on_delete == "move":
            meta = _gone_is_none(lambda path=path: client.move(path, fit_path(DELETED_FOLDER + path)))
            if meta is not None:
                after.append({**item, "path": meta.get("path_display") or DELETED_FOLDER + path,
                              "rev": meta.get("rev")})
        else:
            try:
                _gone_is_none(lambda path=path, rev=rev: client.delete(path, rev if isinstance(rev, str) else None))
            except DropboxApiError as exc:
                if not exc.has("conflict"):
                    raise
                kept.append(path)  # changed by someone since we wrote it: theirs now, kept
    if kept:
        message = f"deleted; kept {', '.join(kept)}: changed in Dropbox since it was written"
    else:
        message = f"moved to {DELETED_FOLDER}" if settings.on_delete == "move" else "deleted in Dropbox"
    return _result(request, ctx, DeliveryStatus.DELETED, path=after[0]["path"] if after else None,
                   message=message, extra={"files": after})


def _gone_is_none(call: Any) -> dict[str, Any] | None:
    try:
        result: dict[str, Any] = call()
        return result
    except DropboxApiError as exc:
        if exc.status == 409 and "not_found" in exc.tags:
            return None  # already gone: nothing left to do for this file
        raise


def _result(request: PushRequest, ctx: Context, status: DeliveryStatus, *, path: str | None = None,
            message: str | None = None, extra: dict[str, Any] | None = None) -> Delivery:
    document = request.document
    return Delivery(document_id=document.id, target=ctx.account.name, version=document.version, status=status,
                    target_path=path, message=message, extra=extra if extra is not None else {})
