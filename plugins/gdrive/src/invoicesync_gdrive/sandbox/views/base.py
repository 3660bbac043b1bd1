"""What every view shares: the app it serves, Drive's error body, and common parameters."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from invoicesync.sandbox import Request, Response

from ..oauth import Grant
from ..store import ApiError, DriveFile, DriveStore, not_found
from ..uploads import whole_body

#: The per-file scope: only files this app created (or was handed) exist for such a token.
DRIVE_FILE_SCOPE = "https://www.googleapis.com/auth/drive.file"
#: Scopes that see the whole Drive, whatever else the token holds.
_WHOLE_DRIVE = frozenset({"https://www.googleapis.com/auth/drive", "https://www.googleapis.com/auth/drive.readonly",
                          "https://www.googleapis.com/auth/drive.metadata",
                          "https://www.googleapis.com/auth/drive.metadata.readonly"})

if TYPE_CHECKING:
    from ..app import DriveSandbox


class View:
    """A group of endpoints of one resource. Calls back into the app for what several share
    (``_file``, ``_check_quota``), so that a test patching the app's method patches every view."""

    def __init__(self, app: DriveSandbox) -> None:
        self.app = app

    @property
    def store(self) -> DriveStore:
        return self.app.store

    def visible(self, grant: Grant, file: DriveFile) -> DriveFile:
        """``file``, unless the token's ``drive.file`` scope cannot see it (then: not found)."""
        if file.by_user and app_files_only(grant):
            raise not_found(file.id)
        return file

    def check_parents(self, grant: Grant, parents: Any) -> None:
        """A parent (or move target) the token cannot see is "not found", as on Google."""
        if not app_files_only(grant) or not isinstance(parents, list | tuple):
            return
        for parent in parents:
            file = self.store.files.get(str(parent))
            if file is not None:
                self.visible(grant, file)

    def shown(self, grant: Grant, files: list[DriveFile]) -> list[DriveFile]:
        return [f for f in files if not f.by_user] if app_files_only(grant) else files


def app_files_only(grant: Grant) -> bool:
    """The token holds ``drive.file`` and no scope that sees the whole Drive."""
    scopes = set((grant.scope or "").split())
    return DRIVE_FILE_SCOPE in scopes and not scopes & _WHOLE_DRIVE


def drive_error(problem: ApiError) -> Response:
    item: dict[str, Any] = {"domain": problem.domain, "reason": problem.reason, "message": problem.message}
    if problem.location:
        item.update(location=problem.location, locationType=problem.location_type or "parameter")
    return Response.json({"error": {"code": problem.status, "message": problem.message, "errors": [item]}},
                         problem.status)


def all_drives(request: Request) -> bool:
    return (request.arg("supportsAllDrives") or request.arg("supportsTeamDrives")) == "true"


def csv(value: str | None) -> list[str]:
    return [v for v in (value or "").split(",") if v]


def int_arg(request: Request, name: str, default: int, low: int, high: int | None) -> int:
    raw = request.arg(name)
    try:
        value = int(raw) if raw is not None else default
    except ValueError:
        raise ApiError(400, "invalid", f"Invalid value for {name}: {raw}", location=name) from None
    if value < low or (high is not None and value > high):
        raise ApiError(400, "invalid", f"Invalid value for {name}: {raw}", location=name)
    return value


def json_object(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(whole_body(request) or b"null")
    except ValueError:
        raise ApiError(400, "parseError", "Parse Error") from None
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ApiError(400, "parseError", "The request body must be a JSON object")
    return body


#: What a file resource holds when ``fields`` does not say (files.get, create, update, uploads).
DEFAULT_FILE_FIELDS = "kind,id,name,mimeType"
