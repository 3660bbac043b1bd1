"""The route handlers of the Dropbox sandbox (a mixin of ``DropboxSandbox``).

Each handler gets the decoded argument (RPC body or ``Dropbox-API-Arg``) and answers with the
route's result, or raises ``RouteError`` with the route's own error union: ``files/upload``
wraps a WriteError as ``{".tag": "path", "reason": ..., "upload_session_id": ...}``, the session
finish routes as ``{".tag": "path", "path": ...}`` and lookups under ``lookup_failed``.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from invoicesync.sandbox import Request, Response

from .sessions import Session, SessionError, Sessions, lookup_failed
from .store import (
    BadInputError,
    Entry,
    Namespace,
    PathContendedError,
    RouteError,
    TooManyWritesError,
    check_names,
    check_path,
    normalize_key,
)

_HASH = re.compile(r"^[0-9a-f]{64}$")
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
MAX_BATCH = 1000
#: ``list_folder``'s ``limit`` runs 1..2000 (approximate on Dropbox).
MAX_LIST_LIMIT = 2000


def parse_mode(value: Any, route: str) -> dict[str, Any]:
    """WriteMode, as a bare string (``"add"``) or the object form (``{".tag": "add"}``)."""
    if value is None:
        return {".tag": "add"}
    if isinstance(value, str) and value in ("add", "overwrite"):
        return {".tag": value}
    if isinstance(value, dict) and value.get(".tag") in ("add", "overwrite"):
        return {".tag": value[".tag"]}
    if isinstance(value, dict) and value.get(".tag") == "update" and isinstance(value.get("update"), str):
        if not re.fullmatch(r"[0-9a-f]{9,}", value["update"]):
            raise BadInputError(f'Error in call to API function "{route}": mode.update: did not match pattern')
        return {".tag": "update", "update": value["update"]}
    raise BadInputError(f'Error in call to API function "{route}": mode: unknown tag {value!r}')


def parse_hash(value: Any, route: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _HASH.match(value):
        raise BadInputError(f'Error in call to API function "{route}": content_hash: '
                            "must be 64 lowercase hex characters")
    return value


def parse_modified(value: Any, route: str) -> str | None:
    """``client_modified``: UTC as ``%Y-%m-%dT%H:%M:%SZ`` exactly (no fraction, no offset)."""
    if value is None:
        return None
    if not isinstance(value, str) or not _TIMESTAMP.match(value):
        raise BadInputError(f'Error in call to API function "{route}": client_modified: '
                            f"{value!r} is not a timestamp like 2024-05-12T15:50:38Z")
    return value


def _cursor(arg: dict[str, Any], route: str) -> tuple[Any, Any]:
    cursor = arg.get("cursor")
    if not isinstance(cursor, dict) or "session_id" not in cursor or "offset" not in cursor:
        raise BadInputError(f'Error in call to API function "{route}": cursor: missing required field')
    return cursor["session_id"], cursor["offset"]


def _commit_args(commit: Any, route: str) -> tuple[str, dict[str, Any], bool, bool, str | None]:
    if not isinstance(commit, dict):
        raise BadInputError(f'Error in call to API function "{route}": commit: missing required field')
    return (check_path(commit.get("path"), route, field="commit.path"), parse_mode(commit.get("mode"), route),
            bool(commit.get("autorename", False)), bool(commit.get("strict_conflict", False)),
            parse_modified(commit.get("client_modified"), route))


def _declared_length(request: Request) -> int | None:
    value = request.headers.get("Content-Length")
    return int(value) if value and value.isdigit() else None


class DropboxRoutes:
    namespace: Namespace
    sessions: Sessions

    # -- content routes --------------------------------------------------------------------------

    def upload(self, request: Request, arg: dict[str, Any]) -> Response:
        route = "files/upload"
        path = check_path(arg.get("path"), route)
        mode = parse_mode(arg.get("mode"), route)
        expected = parse_hash(arg.get("content_hash"), route)
        modified = parse_modified(arg.get("client_modified"), route)
        session = self.sessions.start()
        try:
            self.sessions.write(session, request.iter_body(), expected)
        except SessionError as exc:
            self._drop(session)
            raise RouteError(exc.error) from None
        session.closed = True
        try:
            with self.namespace.write_slot():
                entry = self.namespace.commit(path, mode, session.file, session.offset,
                                              autorename=bool(arg.get("autorename", False)),
                                              strict_conflict=bool(arg.get("strict_conflict", False)),
                                              client_modified=modified)
        except TooManyWritesError:
            self._drop(session)
            raise
        except RouteError as exc:
            # The bytes stay in a closed session the client could commit with finish.
            raise RouteError({".tag": "path", "reason": exc.error, "upload_session_id": session.id}) from None
        self.sessions.forget(session)
        return Response.json(entry.metadata(tagged=False))

    def session_start(self, request: Request, arg: dict[str, Any]) -> Response:
        route = "files/upload_session/start"
        expected = parse_hash(arg.get("content_hash"), route)
        concurrent = isinstance(arg.get("session_type"), dict | str) and "concurrent" in json.dumps(
            arg.get("session_type"))
        if concurrent and _declared_length(request):
            raise RouteError({".tag": "concurrent_session_data_not_allowed"})
        session = self.sessions.start()
        try:
            self.sessions.write(session, request.iter_body(), expected)
        except SessionError as exc:
            self._drop(session)
            raise RouteError(exc.error) from None
        session.closed = bool(arg.get("close", False))
        return Response.json({"session_id": session.id})

    def session_append(self, request: Request, arg: dict[str, Any]) -> Response:
        route = "files/upload_session/append_v2"
        session_id, offset = _cursor(arg, route)
        expected = parse_hash(arg.get("content_hash"), route)
        try:
            session = self.sessions.get(session_id)
            with session.lock:
                if session.closed:
                    raise SessionError({".tag": "closed"})
                self.sessions.check_offset(session, offset)
                self.sessions.write(session, request.iter_body(), expected)
                session.closed = bool(arg.get("close", False))
        except SessionError as exc:
            raise RouteError(exc.error) from None  # append's union is the lookup error itself
        return Response.json(None)

    def session_finish(self, request: Request, arg: dict[str, Any]) -> Response:
        route = "files/upload_session/finish"
        session_id, offset = _cursor(arg, route)
        path, mode, autorename, strict, modified = _commit_args(arg.get("commit"), route)
        expected = parse_hash(arg.get("content_hash"), route)
        try:
            session = self.sessions.get(session_id)
            with session.lock:
                self.sessions.check_offset(session, offset)
                if session.closed and (_declared_length(request) or 0) > 0:
                    raise SessionError({".tag": "closed"})
                self.sessions.write(session, request.iter_body(), expected)
                return self._commit_session(session, path, mode, autorename, strict, modified)
        except SessionError as exc:
            raise lookup_failed(exc) from None

    def _commit_session(self, session: Session, path: str, mode: dict[str, Any], autorename: bool, strict: bool,
                        modified: str | None) -> Response:
        try:
            with self.namespace.write_slot():
                entry = self.namespace.commit(path, mode, session.file, session.offset, autorename=autorename,
                                              strict_conflict=strict, client_modified=modified)
        except RouteError as exc:
            raise RouteError({".tag": "path", "path": exc.error}) from None
        self.sessions.forget(session)
        return Response.json(entry.metadata(tagged=False))

    def _drop(self, session: Session) -> None:
        self.sessions.forget(session)
        session.file.unlink(missing_ok=True)

    # -- RPC routes ------------------------------------------------------------------------------

    def finish_batch(self, request: Request, arg: dict[str, Any]) -> Response:
        route = "files/upload_session/finish_batch_v2"
        entries = arg.get("entries")
        if not isinstance(entries, list) or len(entries) > MAX_BATCH:
            raise BadInputError(f'Error in call to API function "{route}": entries: '
                                f"a list of at most {MAX_BATCH} items")
        parsed = [(_cursor(e, route), _commit_args(e.get("commit"), route)) for e in entries]
        results: list[dict[str, Any]] = []
        # The whole batch is one write operation on the namespace: that is the point of it.
        with self.namespace.write_slot():
            for (session_id, offset), (path, mode, autorename, strict, modified) in parsed:
                try:
                    session = self.sessions.get(session_id)
                    with session.lock:
                        if not session.closed:
                            raise SessionError({".tag": "not_closed"})
                        self.sessions.check_offset(session, offset)
                        entry = self.namespace.commit(path, mode, session.file, session.offset,
                                                      autorename=autorename, strict_conflict=strict,
                                                      client_modified=modified)
                    self.sessions.forget(session)
                    results.append({".tag": "success", **entry.metadata(tagged=False)})
                except SessionError as exc:
                    results.append({".tag": "failure", "failure": lookup_failed(exc).error})
                except RouteError as exc:
                    results.append({".tag": "failure", "failure": {".tag": "path", "path": exc.error}})
                except PathContendedError as exc:
                    # The session stays closed and committable, as after any failed entry.
                    busy = {".tag": "too_many_write_operations"}
                    results.append({".tag": "failure",
                                    "failure": {".tag": "path", "path": busy} if exc.nested else busy})
        return Response.json({"entries": results})

    def _lookup(self, path: Any, route: str) -> Entry:
        if path == "":
            raise BadInputError("The root folder is unsupported.")
        if path == "/":  # API v2 names the root "", never "/"
            raise BadInputError(f'Error in call to API function "{route}": request body: path: '
                                'Specify the root folder as an empty string rather than as "/".')
        if isinstance(path, str) and path.startswith("id:"):
            with self.namespace.lock:
                found = next((e for e in self.namespace.entries.values() if e.id == path), None)
        else:
            try:
                check_names(check_path(path, route), strict=False)  # a read of any name just finds nothing
            except RouteError:
                raise RouteError({".tag": "path", "path": {".tag": "malformed_path"}}) from None
            found = self.namespace.get(str(path))
        if found is None:
            raise RouteError({".tag": "path", "path": {".tag": "not_found"}})
        return found

    def get_metadata(self, request: Request, arg: dict[str, Any]) -> Response:
        entry = self._lookup(arg.get("path"), "files/get_metadata")
        return Response.json(entry.metadata(tagged=True))

    def create_folder(self, request: Request, arg: dict[str, Any]) -> Response:
        path = check_path(arg.get("path"), "files/create_folder_v2")
        try:
            with self.namespace.write_slot():
                entry = self.namespace.create_folder(path, bool(arg.get("autorename", False)))
        except RouteError as exc:
            raise RouteError({".tag": "path", "path": exc.error}) from None
        return Response.json({"metadata": entry.metadata(tagged=False)})

    def move(self, request: Request, arg: dict[str, Any]) -> Response:
        route = "files/move_v2"
        from_path = check_path(arg.get("from_path"), route, field="from_path")
        to_path = check_path(arg.get("to_path"), route, field="to_path")
        with self.namespace.write_slot():
            entry = self.namespace.move(from_path, to_path, bool(arg.get("autorename", False)))
        return Response.json({"metadata": entry.metadata(tagged=True)})

    def delete(self, request: Request, arg: dict[str, Any]) -> Response:
        route = "files/delete_v2"
        path = check_path(arg.get("path"), route)
        parent_rev = arg.get("parent_rev")
        if parent_rev is not None and not (isinstance(parent_rev, str) and re.fullmatch(r"[0-9a-f]{9,}", parent_rev)):
            raise BadInputError(f'Error in call to API function "{route}": parent_rev: did not match pattern')
        with self.namespace.write_slot():
            entry = self.namespace.delete(path, parent_rev)
        return Response.json({"metadata": entry.metadata(tagged=True)})

    def list_folder(self, request: Request, arg: dict[str, Any]) -> Response:
        path = arg.get("path", "")
        if path != "":
            entry = self._lookup(path, "files/list_folder")
            if entry.kind != "folder":
                raise RouteError({".tag": "path", "path": {".tag": "not_folder"}})
            path = entry.display
        limit = arg.get("limit", MAX_LIST_LIMIT)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST_LIMIT:
            raise BadInputError(f'Error in call to API function "files/list_folder": limit: '
                                f"must be 1..{MAX_LIST_LIMIT}")
        recursive = arg.get("recursive", False)
        if not isinstance(recursive, bool):
            raise BadInputError('Error in call to API function "files/list_folder": recursive: expected bool')
        with self.namespace.lock:
            state = {"path": str(path), "recursive": recursive, "limit": limit, "epoch": self.namespace.epoch,
                     "since": self.namespace.seq, "after": ""}
        return self._listing_page(state)

    def list_folder_continue(self, request: Request, arg: dict[str, Any]) -> Response:
        """A cursor first pages through the listing as it was when it started, then (once
        ``has_more`` is false) reports every change after that: new or changed entries, and
        ``deleted`` ones, as Dropbox does. A cursor from before ``reset_cursors`` is refused."""
        cursor = arg.get("cursor")
        if not isinstance(cursor, str) or not cursor:
            raise BadInputError('Error in call to API function "files/list_folder/continue": cursor: '
                                "missing required field")
        try:
            state = json.loads(base64.urlsafe_b64decode(cursor.encode()))
            stale = state["epoch"] != self.namespace.epoch
            listing = "after" in state
        except (ValueError, KeyError, TypeError):
            raise RouteError({".tag": "reset"}) from None
        if stale:
            raise RouteError({".tag": "reset"})
        return self._listing_page(state) if listing else self._changes_page(state)

    def _listing_page(self, state: dict[str, Any]) -> Response:
        # Paged by the last key handed out, so an entry deleted meanwhile never shifts one out.
        entries = [e for e in self.namespace.children(state["path"], state["recursive"])
                   if normalize_key(e.display) > state["after"]]
        page = entries[:state["limit"]]
        more = len(entries) > len(page)
        if more:
            following = {**state, "after": normalize_key(page[-1].display)}
        else:
            following = {k: v for k, v in state.items() if k != "after"}
        return self._answer([e.metadata(tagged=True) for e in page], following, more)

    def _changes_page(self, state: dict[str, Any]) -> Response:
        changes = self.namespace.changes(state["path"], state["recursive"], int(state["since"]))
        page = changes[:state["limit"]]
        since = page[-1][0] if page else state["since"]
        entries = [entry.metadata(tagged=True) if entry is not None else _deleted(display)
                   for _, display, entry in page]
        return self._answer(entries, {**state, "since": since}, len(changes) > len(page))

    @staticmethod
    def _answer(entries: list[dict[str, Any]], state: dict[str, Any], more: bool) -> Response:
        cursor = base64.urlsafe_b64encode(json.dumps(state).encode()).decode()
        return Response.json({"entries": entries, "cursor": cursor, "has_more": more})


def _deleted(display: str) -> dict[str, Any]:
    """DeletedMetadata: what ``list_folder/continue`` reports for a path that holds nothing now."""
    return {".tag": "deleted", "name": display.rsplit("/", 1)[-1], "path_lower": normalize_key(display),
            "path_display": display}


__all__ = ["DropboxRoutes"]
