"""The Dropbox API v2 routes invoicesync uses, over the core ``HttpClient``.

RPC routes (``api`` host) take a JSON body; content routes (``content`` host) take their
argument as JSON in the ``Dropbox-API-Arg`` header and the file bytes as the body. Retries,
``Retry-After``, backoff and token refresh all happen in the core client; this module only
speaks the protocol and turns answers into values or ``DropboxApiError``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from invoicesync import AuthError, Context
from invoicesync.http import Authenticator, HttpClient, relogin_hint

from .errors import DropboxApiError, classify, encode_arg, parse_error
from .settings import DropboxSettings

Body = bytes | Callable[[], Iterable[bytes]]
Metadata = dict[str, Any]


def write_mode(rev: str | None = None) -> dict[str, str]:
    """``add`` never replaces; ``update`` replaces only the exact revision we looked at."""
    return {".tag": "update", "update": rev} if rev else {".tag": "add"}


def with_hash(arg: dict[str, Any], content_hash: str, length: int) -> dict[str, Any]:
    """Add ``content_hash`` (it covers this request's bytes only). It is optional, and an empty
    body has nothing to protect, so it is left out there rather than risk a server that hashes
    "no bytes" differently refusing a finish or a 0-byte file."""
    return {**arg, "content_hash": content_hash} if length else arg


def file_size(meta: Metadata) -> int | None:
    """FileMetadata ``size`` (a JSON number; a numeric string is read too)."""
    size = meta.get("size")
    if isinstance(size, bool):
        return None
    if isinstance(size, int):
        return size
    if isinstance(size, str) and size.strip().isdigit():
        return int(size)
    return None


def file_hash(meta: Metadata | None) -> str | None:
    """FileMetadata ``content_hash`` (optional in the spec), lowercased hex."""
    value = meta.get("content_hash") if meta else None
    return value.lower() if isinstance(value, str) and value else None


def is_file(meta: Metadata | None) -> bool:
    """Metadata routes tag entries ``file``/``folder``/``deleted``; an untagged one with a
    ``rev`` or ``content_hash`` is a file too (FileMetadata of the upload routes has no tag)."""
    if not meta:
        return False
    tag = meta.get(".tag")
    if tag is not None:
        return tag == "file"
    return "rev" in meta or "content_hash" in meta or "size" in meta


def commit_info(path: str, mode: dict[str, str]) -> dict[str, Any]:
    # autorename off: a name we did not choose would break "look it up before writing".
    # mute: invoices arriving should not ping the desktop client for every file.
    return {"path": path, "mode": mode, "autorename": False, "mute": True, "strict_conflict": False}


class DropboxClient:
    def __init__(self, ctx: Context, settings: DropboxSettings, auth: Authenticator | None) -> None:
        self.rpc: HttpClient = ctx.http(settings.api_url, service="dropbox", auth=auth,
                                        classify=classify, error_parser=parse_error)
        self.content: HttpClient = ctx.http(settings.content_url, service="dropbox", auth=auth,
                                            classify=classify, error_parser=parse_error)
        self._relogin = relogin_hint(ctx.account)

    # -- plumbing ------------------------------------------------------------------------------

    def call(self, route: str, arg: Any, *, idempotent: bool = False) -> Any:
        """An RPC route: JSON in, JSON out."""
        with _auth_errors(self._relogin):
            response = self.rpc.post(f"/2/{route}", content=json.dumps(arg).encode(),
                                     headers={"Content-Type": "application/json"}, idempotent=idempotent)
        return response.json() if response.content else None

    def upload_call(self, route: str, arg: Any, body: Body, length: int, *, idempotent: bool = False) -> Any:
        """A content-upload route: the argument in ``Dropbox-API-Arg``, the bytes streamed."""
        headers = {
            "Content-Type": "application/octet-stream",
            "Dropbox-API-Arg": encode_arg(arg),
            # Known length: the body streams without chunked encoding, like the official SDK's.
            "Content-Length": str(length),
        }
        with _auth_errors(self._relogin):
            response = self.content.post(f"/2/{route}", content=body, headers=headers, idempotent=idempotent)
        return response.json() if response.content else None

    # -- routes --------------------------------------------------------------------------------

    def get_metadata(self, path: str) -> Metadata | None:
        """The file or folder at ``path``, or ``None`` when there is none."""
        try:
            result = self.call("files/get_metadata", {"path": path}, idempotent=True)
        except DropboxApiError as exc:
            if exc.status == 409 and exc.tags[:2] == ["path", "not_found"]:
                return None
            raise
        if not isinstance(result, dict) or result.get(".tag") == "deleted":
            return None  # a deleted entry (only listed when asked for) is nothing at this path
        return result

    def upload(self, path: str, mode: dict[str, str], body: Body, length: int, content_hash: str) -> Metadata:
        arg = with_hash(commit_info(path, mode), content_hash, length)
        return _metadata(self.upload_call("files/upload", arg, body, length), "files/upload")

    def session_start(self, body: Body, length: int, content_hash: str, *, close: bool) -> str:
        arg = with_hash({"close": close}, content_hash, length)
        # Opening a session commits nothing: a resend at worst leaves an unused session to expire.
        result = self.upload_call("files/upload_session/start", arg, body, length, idempotent=True)
        session_id = result.get("session_id") if isinstance(result, dict) else None
        if not isinstance(session_id, str) or not session_id:
            raise DropboxApiError("upload_session/start answered without a session_id", status=200)
        return session_id

    def session_append(self, session_id: str, offset: int, body: Body, length: int, content_hash: str,
                       *, close: bool = False) -> None:
        arg = with_hash({"cursor": {"session_id": session_id, "offset": offset}, "close": close},
                        content_hash, length)
        # The offset makes a resend harmless: bytes already received give incorrect_offset with the
        # server's count, which the uploader carries on from.
        self.upload_call("files/upload_session/append_v2", arg, body, length, idempotent=True)

    def session_finish(self, session_id: str, offset: int, commit: dict[str, Any], body: Body, length: int,
                       content_hash: str) -> Metadata:
        arg = with_hash({"cursor": {"session_id": session_id, "offset": offset}, "commit": commit},
                        content_hash, length)
        return _metadata(self.upload_call("files/upload_session/finish", arg, body, length),
                         "files/upload_session/finish")

    def move(self, from_path: str, to_path: str) -> Metadata:
        """``files/move_v2`` without replacing anything: a taken name gets Dropbox's `` (n)``."""
        result = self.call("files/move_v2", {"from_path": from_path, "to_path": to_path, "autorename": True,
                                             "allow_shared_folder": False, "allow_ownership_transfer": False})
        return _metadata(result.get("metadata") if isinstance(result, dict) else None, "files/move_v2")

    def delete(self, path: str, parent_rev: str | None) -> Metadata:
        """``files/delete_v2``; with ``parent_rev`` only that revision (a newer one is a conflict)."""
        arg: dict[str, Any] = {"path": path}
        if parent_rev:
            arg["parent_rev"] = parent_rev
        result = self.call("files/delete_v2", arg)
        return _metadata(result.get("metadata") if isinstance(result, dict) else None, "files/delete_v2")

    def finish_batch(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Commit closed sessions in one write operation; one result per entry, in order. Each is
        ``{".tag": "success", <FileMetadata fields>}`` or ``{".tag": "failure", "failure": <union>}``."""
        result = self.call("files/upload_session/finish_batch_v2", {"entries": entries})
        results = result.get("entries") if isinstance(result, dict) else None
        if not isinstance(results, list) or len(results) != len(entries):
            raise DropboxApiError("finish_batch_v2 answered with a different number of entries", status=200)
        return [_batch_entry(item) for item in results]


def _metadata(result: Any, route: str) -> Metadata:
    if not isinstance(result, dict):
        raise DropboxApiError(f"{route} answered without file metadata", status=200)
    return result


def _batch_entry(item: Any) -> dict[str, Any]:
    """Stone flattens the success FileMetadata beside the tag; the nested form
    (``{".tag": "success", "success": {...}}``) is read as well."""
    if not isinstance(item, dict):
        return {".tag": "failure", "failure": {".tag": "other"}}
    nested = item.get("success")
    if item.get(".tag") == "success" and isinstance(nested, dict):
        return {**nested, ".tag": "success"}
    return item


class _auth_errors:  # noqa: N801 - used as a lowercase context manager
    """A 401 that survived the refresh is a login problem for the whole account, not one file."""

    def __init__(self, relogin: str) -> None:
        self.relogin = relogin

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, DropboxApiError) and exc.status == 401:
            raise AuthError(f"Dropbox refused the login: {exc}; {self.relogin}") from exc
