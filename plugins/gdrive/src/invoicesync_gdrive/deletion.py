"""Documents deleted at the source: the account's ``on_delete`` policy for their Drive files.

- ``keep`` (the default): nothing changes; the delivery is ``skipped`` with the reason.
- ``move``: each file moves into ``_deleted/`` (under the root folder, keeping its sub-path).
- ``trash``: each file goes to Drive's trash (``trashed: true``), restorable from there.

Only files that are still ours (their ``appProperties`` name this document) are touched; a file
already gone or trashed counts as done.
"""

from __future__ import annotations

from typing import Any

from invoicesync import Context, Delivery, DeliveryStatus, PushRequest

from .client import DriveClient
from .folders import FolderTree
from .upload import APP_DOCUMENT, document_key

DELETED_FOLDER = "_deleted"
KEPT = "deleted at the source; on_delete = keep leaves its files in Drive"


class Deletions:
    def __init__(self, client: DriveClient, tree: FolderTree, ctx: Context) -> None:
        self.client = client
        self.tree = tree
        self.ctx = ctx
        self.policy = client.settings.on_delete

    def apply(self, request: PushRequest) -> Delivery:
        if self.policy == "keep":
            return self._result(request, DeliveryStatus.SKIPPED, message=KEPT)
        recorded = _recorded(request)
        path = request.previous.target_path if request.previous else None
        if self.ctx.dry_run:
            verb = f"move to {DELETED_FOLDER}/" if self.policy == "move" else "move to the Drive trash"
            names = ", ".join(str(item.get("name") or item["id"]) for item in recorded.values()) or "nothing"
            return self._result(request, DeliveryStatus.PLANNED, path=path, message=f"would {verb}: {names}")
        key = document_key(request.document.id)
        folder = None
        if self.policy == "move":
            folders = (path or "").split("/")[:-1]
            folder = self.tree.ensure([DELETED_FOLDER, *folders])
        after: dict[str, Any] = {}
        for role, item in recorded.items():
            file = self.client.get_file(str(item["id"]))
            if not file or file.get("trashed") or (file.get("appProperties") or {}).get(APP_DOCUMENT) != key:
                continue  # gone, trashed already, or no longer ours
            if folder is None:
                self.client.update_metadata(file["id"], {"trashed": True})
                continue
            old = [p for p in file.get("parents") or [] if p != folder]
            moved = self.client.update_metadata(file["id"], {}, {"addParents": folder,
                                                                 **({"removeParents": ",".join(old)} if old else {})})
            after[role] = {"id": moved.get("id", file["id"]), "name": moved.get("name", file.get("name"))}
        if folder is None:
            return self._result(request, DeliveryStatus.DELETED, path=path, message="moved to the Drive trash")
        return self._result(request, DeliveryStatus.DELETED, path=f"{DELETED_FOLDER}/{path}" if path else None,
                            message=f"moved to {DELETED_FOLDER}/", extra={"files": after})

    def _result(self, request: PushRequest, status: DeliveryStatus, *, path: str | None = None,
                message: str | None = None, extra: dict[str, Any] | None = None) -> Delivery:
        document = request.document
        return Delivery(document_id=document.id, target=self.ctx.account.name, version=document.version,
                        status=status, target_path=path, message=message, extra=extra or {})


def _recorded(request: PushRequest) -> dict[str, dict[str, Any]]:
    """The files the last delivery recorded, by role: ``{"pdf": {"id": …, "name": …}, …}``."""
    files = request.previous.extra.get("files") if request.previous else None
    if not isinstance(files, dict):
        return {}
    return {str(role): item for role, item in files.items() if isinstance(item, dict) and item.get("id")}
