"""Business Central's request rules as the emulator applies them: JSON bodies, known fields, string
lengths, Edm.Date literals and ``If-Match`` etags, each refused with BC's own error code."""

from __future__ import annotations

from datetime import date
from typing import Any

from invoicesync.sandbox import Request


class BcError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def request_object(request: Request) -> dict[str, Any]:
    try:
        body = request.json()
    except ValueError:
        raise BcError(400, "BadRequest", "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise BcError(400, "BadRequest", "The request body must be a JSON object.")
    return body


def known_fields(body: dict[str, Any], allowed: set[str], type_name: str) -> None:
    for key in body:
        if key not in allowed and not key.startswith("@odata."):
            raise BcError(400, "BadRequest", f"The property '{key}' does not exist on type "
                                             f"'Microsoft.NAV.{type_name}'. Make sure to only use property names "
                                             "that are defined by the type.")


def max_length(value: str, limit: int, field: str) -> None:
    if len(value) > limit:
        raise BcError(400, "Application_StringExceededLength",
                      f"The length of the string is {len(value)}, but it must be less than or equal to {limit} "
                      f"characters. Value: {value} ({field})")


def edm_date(value: Any, field: str) -> str:
    try:
        return date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise BcError(400, "BadRequest", f"Cannot convert the literal '{value}' to the expected type "
                                         f"'Edm.Date' ({field}).") from None


def check_if_match(request: Request, entity: dict[str, Any], conflict_status: int = 412) -> None:
    given = request.headers.get("if-match")
    if not given:
        raise BcError(400, "BadRequest_InvalidToken",
                      "Could not validate the client concurrency token required by the service. Please provide a "
                      "valid token in the client request.")
    if given != "*" and given != entity.get("@odata.etag"):
        raise BcError(conflict_status, "Request_EntityChanged", "Another user has already changed the record.")
