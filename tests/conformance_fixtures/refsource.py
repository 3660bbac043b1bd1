"""A small, correct HTTP source plugin for the kit's own tests — and switches that break it.

Each switch breaks exactly one behaviour a conformance check is about; the kit's tests run the
suite on a broken copy and assert that check fails.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx
from invoicesync import (
    Account,
    Checkpoint,
    Company,
    Context,
    Direction,
    Document,
    DocumentError,
    DocumentRef,
    FileRole,
    PluginInfo,
    PluginKind,
    Settings,
    hookimpl,
)
from invoicesync.http import HttpClient, OAuth2Client, TokenAuth, TokenSet
from invoicesync.testing.conformance import SourceConformance

from .refsource_sandbox import RefSandbox


class RefSettings(Settings):
    base_url: str
    page_size: int = 4


class _MemorySlot:
    """Keeps the token in memory only: the "forget_rotated_token" bug."""

    def __init__(self, value: str | None) -> None:
        self.value = value

    def get(self, key: str) -> str | None:
        return self.value

    def set(self, key: str, value: str) -> None:
        self.value = value


@dataclass(eq=False)  # plugins must stay hashable for pluggy
class RefSource:
    repeat_boundary: bool = False  #: re-yields the last item of each page on the next one
    backwards_cursor: bool = False  #: the final checkpoint points back at the first item
    ignore_cursor: bool = False  #: always lists from the beginning
    ignore_retry_after: bool = False  #: retries a 429 at once, with its own loop
    no_refresh: bool = False  #: sends the stored access token and never refreshes it
    forget_rotated_token: bool = False  #: keeps refreshed tokens in memory only
    lenient_amounts: bool = False  #: turns a malformed amount into "no amount" silently

    @hookimpl
    def plugin_info(self) -> PluginInfo:
        return PluginInfo(kind=PluginKind.SOURCE, title="Reference source", api_version=(1, 1), settings=RefSettings,
                          secrets=("oauth_token",), concurrency=2)

    @hookimpl
    def sandbox(self, options: dict[str, Any]) -> RefSandbox:
        return RefSandbox(documents=int(options.get("documents", 10)), seed=int(options.get("seed", 1)))

    def __post_init__(self) -> None:
        self._clients: dict[int, HttpClient] = {}
        self._lock = threading.Lock()

    def _client(self, ctx: Context) -> HttpClient:
        """One client (so one token authenticator) per account context: concurrent fetches that
        each refreshed with the same single-use refresh token would lock the account out."""
        with self._lock:
            client = self._clients.get(id(ctx))
            if client is None:
                client = self._clients[id(ctx)] = self._new_client(ctx)
                weakref.finalize(ctx, self._clients.pop, id(ctx), None)
            return client

    def _new_client(self, ctx: Context) -> HttpClient:
        settings: RefSettings = ctx.settings
        if self.no_refresh:
            token = TokenSet.model_validate_json(ctx.secrets.get("oauth_token") or "{}")
            return ctx.http(settings.base_url, headers={"Authorization": f"Bearer {token.access_token}"})
        oauth = OAuth2Client(ctx.http(settings.base_url), token_url="/oauth/token", client_id="reference")
        slot = _MemorySlot(ctx.secrets.get("oauth_token")) if self.forget_rotated_token else ctx.secrets
        return ctx.http(settings.base_url, auth=TokenAuth(slot, oauth.refresh))

    @hookimpl
    def auth(self, ctx: Context) -> list[Company]:
        client = self._client(ctx)
        return [Company(id=c["id"], name=c["name"]) for c in client.get("/api/companies").json()]

    @hookimpl
    def list_documents(self, company: Company, cursor: str | None, ctx: Context
                       ) -> Iterator[DocumentRef | Checkpoint]:
        settings: RefSettings = ctx.settings
        after = "" if self.ignore_cursor else cursor or ""
        first_key: str | None = None
        previous_last: dict[str, Any] | None = None
        client = self._client(ctx)
        while True:
            params = {"after": after, "limit": settings.page_size}
            page = self._get_page(client, ctx, f"/api/companies/{company.id}/documents", params)
            items = page["items"]
            if self.repeat_boundary and previous_last is not None:
                items = [previous_last, *items]
            for item in items:
                first_key = first_key or f"{item['modified']:010d}|{item['id']}"
                yield DocumentRef(source_id=item["id"], modified_at=datetime.fromtimestamp(item["modified"], UTC))
            if page["last"]:
                last = first_key if self.backwards_cursor and not page["next"] else page["last"]
                yield Checkpoint(cursor=last)
            if not page["next"]:
                return
            previous_last = page["items"][-1]
            after = page["next"]

    def _get_page(self, client: HttpClient, ctx: Context, path: str, params: dict[str, Any]) -> Any:
        if not self.ignore_retry_after:
            return client.get(path, params=params).json()
        # The bug: a home-made retry loop that ignores the server's Retry-After.
        settings: RefSettings = ctx.settings
        token = TokenSet.model_validate_json(ctx.secrets.get("oauth_token") or "{}")
        for _ in range(5):
            response = httpx.get(settings.base_url + path, params=params,
                                 headers={"Authorization": f"Bearer {token.access_token}"})
            if response.status_code != 429:
                response.raise_for_status()
                return response.json()
            time.sleep(0.05)
        raise RuntimeError("still throttled")

    @hookimpl
    def fetch_document(self, account: Account, company: Company, ref: DocumentRef, ctx: Context) -> Document:
        client = self._client(ctx)
        body = client.get(f"/api/companies/{company.id}/documents/{ref.source_id}").json()
        try:
            total: Decimal | None = Decimal(body["total"])
        except InvalidOperation:
            if not self.lenient_amounts:
                raise DocumentError(f"total {body['total']!r} is not a number", document=body["number"],
                                    field="total") from None
            total = None
        with client.stream("GET", f"/api/companies/{company.id}/documents/{ref.source_id}/pdf") as response:
            pdf = ctx.blobs.put(response.iter_bytes(), name=f"{body['number']}.pdf",
                                media_type="application/pdf", role=FileRole.PDF)
        return Document(
            id=Document.make_id(account.plugin, account.name, company.id, ref.source_id),
            source=account.plugin, account=account.name, company=company, source_id=ref.source_id,
            direction=Direction.SALES, number=body["number"], issue_date=date(2026, 1, 1),
            amount_incl_vat=total, modified_at=ref.modified_at, files=[pdf],
        )


class RefSourceSuite(SourceConformance):
    """The adapter for the reference source; ``knobs`` pick the bugs to switch on."""

    plugin = "refsource"
    list_path = r"/api/companies/[^/]+/documents$"
    token_path = r"/oauth/token$"
    sandbox_options = {"documents": 10, "seed": 1}
    knobs: dict[str, bool] = {}

    def plugin_object(self) -> RefSource:
        return RefSource(**self.knobs)

    def expected_source_ids(self, app: Any, company: Company) -> set[str]:
        return set(app.ids(company.id))

    def corrupt_document(self, app: Any, company: Company) -> str:
        return str(app.corrupt(company.id))

    def expire_access_token(self, app: Any) -> None:
        app.expire_access_token()
