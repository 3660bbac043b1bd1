"""Billit's wire forms the listing relies on: offset-free timestamps, OData literals, the query
string as the docs write it, the list page shapes, and the per-company cursor."""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from invoicesync import RemoteError

from .client import SERVICE

ORDERS = "/v1/orders"
#: At most this many boundary ids ride in the cursor (more only after a huge bulk import).
MAX_CURSOR_IDS = 500

try:
    BILLIT_TZ: ZoneInfo | None = ZoneInfo("Europe/Brussels")
except ZoneInfoNotFoundError:  # no tz database: keep Billit's naive local time
    BILLIT_TZ = None


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if "." in text:  # Python wants exactly 3 or 6 fraction digits before 3.11's relaxed parser
        head, _, frac = text.partition(".")
        digits = "".join(ch for ch in frac if ch.isdigit())
        tail = frac[len(digits):]
        text = f"{head}.{(digits + '000000')[:6]}{tail}"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def parse_timestamp(value: Any) -> datetime | None:
    """Billit's ``2024-03-10T15:00:49.72`` (no offset, 0-7 fraction digits) as a naive datetime,
    on Billit's own clock: the cursor compares and filters on exactly what Billit wrote (an
    offset, should one ever come, is dropped rather than converted, so a filter built from it
    still names the instant as the server wrote it)."""
    parsed = _parse(value)
    return parsed.replace(tzinfo=None) if parsed is not None else None


def repeated_hour(stamp: datetime | None) -> timedelta:
    """How far the wall clock went back if ``stamp`` lies in the hour a DST fall-back shows twice
    (02:00-03:00 Belgian time on the last Sunday of October), else nothing. Billit writes wall
    time without an offset, so an order edited (or deleted) in the second pass sorts before a
    cursor stored in the first: the run re-reads that far back (the library dedupes what it
    already has)."""
    if stamp is None or BILLIT_TZ is None:
        return timedelta(0)
    first = stamp.replace(tzinfo=BILLIT_TZ, fold=0).utcoffset()
    second = stamp.replace(tzinfo=BILLIT_TZ, fold=1).utcoffset()
    if first is None or second is None:
        return timedelta(0)
    return max(first - second, timedelta(0))  # a spring-forward gap (negative) re-reads nothing


def localize(value: datetime | None, text: Any = None) -> datetime | None:
    """An aware instant for the library: Billit's offset-free local time is Belgian time; a
    timestamp that does carry an offset (``Z``, ``+01:00``) keeps it."""
    explicit = _parse(text)
    if explicit is not None and explicit.tzinfo is not None:
        return explicit
    if value is None or BILLIT_TZ is None:
        return value
    return value.replace(tzinfo=BILLIT_TZ)


def odata_datetime(value: datetime, *, date_only: bool = False) -> str:
    """An OData v3 ``DateTime'...'`` literal: no offset (Billit's timestamps have none, and OData
    v3 ``DateTime`` is offset-free; ``+01:00`` would even turn into a space in a query), whole
    seconds (floored). Billit's docs only show ``DateTime'2025-04-01'``; a time part is standard
    OData v3, and whole seconds are the form every DateTime parser reads. Flooring only re-reads a
    few orders of that second, which the cursor skips. ``date_only`` is the fallback for a server
    that takes nothing but the documented date form."""
    if date_only:
        return f"DateTime'{value.date().isoformat()}'"
    return "DateTime'" + value.replace(microsecond=0, tzinfo=None).isoformat(timespec="seconds") + "'"


SAFE_IN_QUERY = "$',:/()"


def encode_query(params: dict[str, Any]) -> str:
    """The query string as Billit's docs write it: ``$filter=OrderType+eq+'Invoice'`` (``$``,
    quotes, commas and colons literal, spaces as ``+``), rather than ``%24filter=...%27``."""
    return "&".join(f"{urllib.parse.quote_plus(str(k), safe='$')}="
                    f"{urllib.parse.quote_plus(str(v), safe=SAFE_IN_QUERY)}" for k, v in params.items())



@dataclass
class Cursor:
    last_modified: str | None = None
    ids: list[int] = field(default_factory=list)
    deleted_since: str | None = None
    deleted_ids: list[int] = field(default_factory=list)  # deletions reported at that instant
    #: Inside a crowded second (or day, for a date-only server): its start, as a wire timestamp,
    #: and the highest OrderID listed in it so far.
    window: str | None = None
    after: int | None = None

    @classmethod
    def parse(cls, text: str | None) -> Cursor:
        if not text:
            return cls()
        try:
            data = json.loads(text)
        except ValueError:
            return cls(last_modified=text)  # a bare timestamp (hand-set cursor)
        if not isinstance(data, dict):
            return cls()
        ids = [i for i in data.get("ids") or [] if isinstance(i, int)]
        deleted_ids = [i for i in data.get("dids") or [] if isinstance(i, int)]
        window = data.get("win") if isinstance(data.get("win"), str) else None
        after = as_int_id(data.get("after")) if window else None
        return cls(data.get("lm"), ids, data.get("del"), deleted_ids, window, after)

    def dump(self) -> str:
        data: dict[str, Any] = {"lm": self.last_modified}
        if self.ids and len(self.ids) <= MAX_CURSOR_IDS:
            data["ids"] = sorted(self.ids)
        if self.window:
            data["win"] = self.window
            if self.after is not None:
                data["after"] = self.after
        if self.deleted_since:
            data["del"] = self.deleted_since
            if self.deleted_ids and len(self.deleted_ids) <= MAX_CURSOR_IDS:
                data["dids"] = sorted(self.deleted_ids)
        return json.dumps(data, separators=(",", ":"))


ITEMS_KEYS = ("Items", "items", "value", "Value")
NEXT_KEYS = ("NextPageLink", "nextPageLink", "odata.nextLink", "@odata.nextLink", "__next")


def page_items(body: Any) -> tuple[list[Any], str | None]:
    """A page of ``GET /v1/orders``: ``{"Items": [...], "NextPageLink": ..., "Count": ...}`` is what
    Billit's docs and clients show; its Swagger declares a bare array. Both are read (and the
    OData spellings ``value`` / ``odata.nextLink``, should a server use them)."""
    if isinstance(body, list):
        return body, None
    if isinstance(body, dict):
        for key in ITEMS_KEYS:
            if isinstance(body.get(key), list):
                links = [body.get(k) for k in NEXT_KEYS]
                link = next((v for v in links if isinstance(v, str) and v.strip()), None)
                return body[key], link
    raise RemoteError(f"{ORDERS}: expected {{'Items': [...]}} or an array, got {type(body).__name__}",
                      service=SERVICE)


def as_int_id(value: Any) -> int | None:
    """An OrderID or PartyID: an int32 per the Swagger; a string of digits is read too."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def wire_timestamp(moment: datetime) -> str:
    """A cursor instant in Billit's own form (no offset, milliseconds only when there are any)."""
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{moment.microsecond // 1000:03d}" if moment.microsecond else "")
