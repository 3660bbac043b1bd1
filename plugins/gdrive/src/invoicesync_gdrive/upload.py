"""One file into one folder, exactly once: look up by appProperties, then create or update.

Every file we write carries ``appProperties`` naming the invoicesync document, the file's role
and its content hash. Before creating — and after any answer we never got — we search the
folder for those properties, so a retry, a crash before the ledger write or a lost response
finds the file instead of making a second one. A changed document replaces the content of the
file it already has (same id). Large files go through a resumable session whose URI is kept in
the account state, so a later run continues where the last one stopped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from invoicesync import Context, DocumentError, FileRef, OutcomeUnknown
from invoicesync.naming import file_keys

from .client import (
    APP_DOCUMENT,
    APP_ROLE,
    APP_SHA256,
    DriveClient,
    RangeReader,
    SessionGoneError,
    UploadProgress,
    app_property,
    quote,
)
from .listing import FolderListings
from .names import free_name, is_variant, name_lock

__all__ = ["APP_DOCUMENT", "APP_ROLE", "APP_SHA256", "FileResult", "FileSpec", "Uploader", "document_key",
           "file_roles"]
#: Drive limits one app property (key + value) to 124 bytes.
_PROPERTY_BYTES = 124
_READ = 1024 * 1024


def file_roles(files: list[FileRef]) -> list[str]:
    """The role each file is found again by (``appProperties``, ledger): ``naming.file_keys`` —
    ``pdf``, ``ubl``, ``attachment:<name>`` (``#2`` on a repeat) — digested when it would not fit
    Drive's 124 bytes per property."""
    roles = []
    for key in file_keys(files):
        if len(APP_ROLE.encode()) + len(key.encode()) > _PROPERTY_BYTES:
            key = "attachment:sha256:" + hashlib.sha256(key.encode()).hexdigest()[:40]
        roles.append(key)
    return roles


@dataclass(frozen=True)
class FileSpec:
    document_id: str
    role: str  #: from ``file_roles``: the files of one document share a folder
    name: str  #: the planned name
    ref: FileRef
    #: Give it a `` (n)`` suffix when another file holds the planned name (the main file). The
    #: others do not: their names follow wherever the main file landed.
    keep_apart: bool = True

    @property
    def document_key(self) -> str:
        return document_key(self.document_id)


def document_key(document_id: str) -> str:
    """The document id if it fits in an app property, else a stable digest of it."""
    if len(APP_DOCUMENT.encode()) + len(document_id.encode()) <= _PROPERTY_BYTES:
        return document_id
    return "sha256:" + hashlib.sha256(document_id.encode()).hexdigest()[:48]


@dataclass
class FileResult:
    file: dict[str, Any]
    written: bool


def blob_reader(ctx: Context, sha256: str) -> RangeReader:
    def read(start: int, end: int) -> Iterator[bytes]:
        with ctx.blobs.open(sha256) as handle:
            handle.seek(start)
            remaining = end - start
            while remaining > 0 and (piece := handle.read(min(_READ, remaining))):
                remaining -= len(piece)
                yield piece

    return read


class Uploader:
    def __init__(self, client: DriveClient, ctx: Context, listings: FolderListings | None = None) -> None:
        self.client = client
        self.ctx = ctx
        self.settings = client.settings
        #: The run's folder listings; ``None``: every look-up asks Drive.
        self.listings = listings

    def sync(self, spec: FileSpec, folder_id: str, known_id: str | None) -> FileResult:
        md5 = self.md5(spec.ref.sha256)
        existing = self.find(spec, folder_id, known_id)
        if existing is not None and self._placed(existing, spec, folder_id):
            if _holds(existing, spec, md5):
                return FileResult(existing, written=False)
            # Changed content, same place: replace it in the file we have (same id, same name).
            file = self._write(spec, self._metadata(spec, existing["name"]), md5, file_id=existing["id"], params={})
            self._note(file, folder_id)
        else:
            # A new file, or one that must move or be renamed: its name is chosen and taken under
            # one lock, so two threads never settle on the same free name.
            with name_lock(self.ctx.account.name, folder_id, spec.name):
                name = spec.name
                if spec.keep_apart:
                    name = free_name(self.client, folder_id, spec.name, self._owner(spec), spec.document_id,
                                     self.listings)
                metadata = self._metadata(spec, name)
                if existing is None:
                    file = self._create(spec, metadata, folder_id, md5)
                else:
                    file = self._write(spec, metadata, md5, file_id=existing["id"],
                                       params=_move(existing, folder_id))
                # Still under the name lock: the next thread to choose here sees this name taken.
                self._note(file, folder_id)
        file = self._complete(file)
        self._note(file, folder_id)
        if str(file.get("md5Checksum") or "").lower() != md5:
            raise DocumentError(f"Drive holds different bytes than were sent for {file.get('name')} "
                                f"(md5 {file.get('md5Checksum')} ≠ {md5}); it will be sent again next run",
                                document=spec.document_id, field=spec.role)
        return FileResult(file, written=True)

    def _note(self, file: dict[str, Any], folder_id: str) -> None:
        if self.listings is not None:
            # A write's answer may lack ``parents``: an upload answer names no folder unless asked.
            self.listings.note(file if "parents" in file or "id" not in file else {**file, "parents": [folder_id]})

    def _complete(self, file: dict[str, Any]) -> dict[str, Any]:
        """The written file with the fields we check. An upload answer should carry them (we ask
        with ``fields``), but one that came back with only the default ``kind,id,name,mimeType``
        is read again rather than taken for a failed write."""
        if all(key in file for key in ("md5Checksum", "parents", "appProperties")) or "id" not in file:
            return file
        return self.client.get_file(str(file["id"])) or file

    @staticmethod
    def _placed(file: dict[str, Any], spec: FileSpec, folder_id: str) -> bool:
        """In the right folder under the planned name, or under a collision suffix it got earlier."""
        name = str(file.get("name") or "")
        fits = is_variant(name, spec.name) if spec.keep_apart else name == spec.name
        return fits and folder_id in (file.get("parents") or [])

    @staticmethod
    def _owner(spec: FileSpec) -> dict[str, str]:
        return {APP_DOCUMENT: spec.document_key, APP_ROLE: spec.role}

    def _metadata(self, spec: FileSpec, name: str) -> dict[str, Any]:
        return {"name": name, "mimeType": spec.ref.media_type,
                "appProperties": {**self._owner(spec), APP_SHA256: spec.ref.sha256}}

    # -- looking up --------------------------------------------------------------------------

    def find(self, spec: FileSpec, folder_id: str, known_id: str | None, *,
             fresh: bool = False) -> dict[str, Any] | None:
        """Our file for (document, role): by the id the ledger remembers, else by appProperties —
        from the run's listing of the folder, or (``fresh``) by asking Drive."""
        if known_id:
            file = self.client.get_file(known_id)
            if file and not file.get("trashed") and (file.get("appProperties") or {}).get(APP_DOCUMENT) \
                    == spec.document_key:
                return file
        if self.listings is not None and not fresh:
            found = self.listings.owned(self.client, folder_id, self._owner(spec))
            if len(found) == 1 and "md5Checksum" not in found[0]:
                # Written earlier in this run: the listing keeps its name and marks only.
                found = [f for f in [self.client.get_file(found[0]["id"])] if f and not f.get("trashed")]
        else:
            q = (f"{quote(folder_id)} in parents and trashed = false and "
                 f"{app_property(APP_DOCUMENT, spec.document_key)} and {app_property(APP_ROLE, spec.role)}")
            found = list(self.client.list_files(q))
        # Should two ever exist (made outside our control), keep writing to the oldest one.
        return min(found, key=lambda f: (f.get("createdTime") or "", f["id"])) if found else None

    def md5(self, sha256: str) -> str:
        """MD5 of a blob (what Drive reports as md5Checksum), cached by the blob's sha256."""
        key = f"md5:{sha256}"
        if cached := self.ctx.kv.get(key):
            return str(cached)
        digest = hashlib.md5(usedforsecurity=False)
        for chunk in self.ctx.blobs.iter_chunks(sha256):
            digest.update(chunk)
        self.ctx.kv.set(key, digest.hexdigest())
        return digest.hexdigest()

    # -- writing -----------------------------------------------------------------------------

    def _create(self, spec: FileSpec, metadata: dict[str, Any], folder_id: str, md5: str) -> dict[str, Any]:
        metadata = {**metadata, "parents": [folder_id]}
        for _ in range(2):
            try:
                return self._write(spec, metadata, md5, file_id=None, params={})
            except OutcomeUnknown:
                # The create may have happened: look before trying again, never create blind.
                found = self.find(spec, folder_id, None, fresh=True)
                if found is not None and _holds(found, spec, md5):
                    return found
                if found is not None:  # created, but the content is not complete: replace it in place
                    return self._write(spec, _without_parents(metadata), md5, file_id=found["id"], params={})
        raise OutcomeUnknown(f"creating {spec.name} got no answer twice; it will be looked up next run",
                             service="gdrive")

    def _write(self, spec: FileSpec, metadata: dict[str, Any], md5: str, *, file_id: str | None,
               params: dict[str, str]) -> dict[str, Any]:
        reader = blob_reader(self.ctx, spec.ref.sha256)
        if spec.ref.size <= self.settings.resumable_threshold:
            return self.client.multipart(metadata, spec.ref.media_type, spec.ref.size, reader,
                                         file_id=file_id, params=params)
        return self._resumable(spec, metadata, reader, file_id=file_id, params=params)

    def _resumable(self, spec: FileSpec, metadata: dict[str, Any], reader: RangeReader, *,
                   file_id: str | None, params: dict[str, str]) -> dict[str, Any]:
        key = f"upload:{spec.document_id}:{spec.role}"
        total = spec.ref.size
        session, progress = self._resume(key, spec, file_id)
        if session is None or progress is None:
            session = self.client.start_resumable(metadata, spec.ref.media_type, total, file_id=file_id,
                                                  params=params)
            # Kept before the first byte goes out: a crash from here on resumes this session.
            self.ctx.kv.set(key, {"uri": session, "sha256": spec.ref.sha256, "file_id": file_id, "total": total})
            progress = UploadProgress(received=0)
        stalls = 0
        while progress.file is None:
            start = progress.received
            end = min(start + self.settings.chunk_size, total)
            try:
                progress = self.client.put_chunk(session, start, end, total, reader)
            except OutcomeUnknown:
                # The chunk may have arrived in whole or in part: ask, then go on from there.
                progress = self.client.upload_status(session, total)
            stalls = stalls + 1 if progress.file is None and progress.received <= start else 0
            if stalls >= 3:
                raise DocumentError(f"the upload session of {spec.name} accepts no more bytes (stuck at {start})",
                                    document=spec.document_id, field=spec.role)
        self.ctx.kv.delete(key)
        return progress.file

    def _resume(self, key: str, spec: FileSpec, file_id: str | None) -> tuple[str | None, UploadProgress | None]:
        saved = self.ctx.kv.get(key)
        if not saved or saved.get("sha256") != spec.ref.sha256 or saved.get("file_id") != file_id:
            return None, None
        try:
            progress = self.client.upload_status(saved["uri"], spec.ref.size)
        except SessionGoneError:
            self.ctx.kv.delete(key)
            return None, None
        self.ctx.log.info("resuming the upload of %s at byte %d of %d", spec.name, progress.received, spec.ref.size)
        return str(saved["uri"]), progress


def _holds(file: dict[str, Any], spec: FileSpec, md5: str) -> bool:
    props = file.get("appProperties") or {}
    return str(file.get("md5Checksum") or "").lower() == md5 and props.get(APP_SHA256) == spec.ref.sha256


def _move(file: dict[str, Any], folder_id: str) -> dict[str, str]:
    """``addParents``/``removeParents`` for a PATCH that puts ``file`` in ``folder_id``: only the
    changes, never an empty parameter (a rename within its folder sends neither)."""
    parents = [str(p) for p in file.get("parents") or []]
    params: dict[str, str] = {}
    if folder_id not in parents:
        params["addParents"] = folder_id
    if old := [p for p in parents if p != folder_id]:
        params["removeParents"] = ",".join(old)
    return params


def _without_parents(metadata: dict[str, Any]) -> dict[str, Any]:
    # A PATCH may not set parents in the body; they are moved with add/removeParents instead.
    return {k: v for k, v in metadata.items() if k != "parents"}
