"""What every view shares: the app it serves, Drive's error body, and common parameters."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from invoicesync.sandbox import Request, Response

from ..store import ApiError, DriveStore
from ..uploads import whole_body

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
