"""A small client for the Business Central API v2.0, over the core ``HttpClient``.

Retries (429 with or without ``Retry-After``, 5xx, connection errors), the request budget and
token renewal on 401 all come from core; this module knows BC's URLs, OData conventions and its
``{"error": {"code", "message"}}`` body.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import httpx
from invoicesync import AuthError, Context, InvoiceSyncError, OutcomeUnknown, RemoteError
from invoicesync.http import HttpClient, Verdict, iter_pages

from .auth import MsalAuthenticator, shared_authenticator
from .settings import Dynamics365Settings

SERVICE = "dynamics365"


class NotFoundError(RemoteError):
    """The record, or the whole entity set (an older tenant), does not exist."""


#: BC error codes that mean "fix the setup", with the fix.
_SETUP_FIXES = {
    "Authentication_InvalidCredentials": (
        "Business Central rejected the app's token. In Business Central, open the page "
        "'Microsoft Entra Applications', add this client id, set State = Enabled and assign permission sets"
    ),
}


def parse_error(response: httpx.Response) -> InvoiceSyncError:
    """BC's error body → an error whose message says what went wrong (and what to fix).

    BC refusing the app itself (not registered, no permission) is an ``AuthError``: no document
    can succeed, so core stops the account's batch with the fix instead of failing each document.
    """
    code, message = None, ""
    try:
        body = response.json()
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            code = error.get("code")
            raw = error.get("message")
            # OData v4 JSON says a string; older OData answers {"lang", "value"}: read both.
            message = str(raw.get("value") or "") if isinstance(raw, dict) else str(raw or "")
    except ValueError:
        message = response.text[:300]
    # BC appends "CorrelationId: <guid>." to messages; keep it, support asks for it.
    message = message.strip() or response.reason_phrase or "error"
    status = response.status_code
    if code in _SETUP_FIXES:
        return AuthError(f"{_SETUP_FIXES[code]} ({message})")
    if status == 401:
        return AuthError(f"Business Central refused the token: {message}")
    if status == 403 or (code or "").startswith("Authorization_"):
        return AuthError(
            "the app lacks a Business Central permission: on the 'Microsoft Entra Applications' page give it "
            f"permission sets that can read vendors and write purchase documents ({message})")
    if status == 404 or code in {"BadRequest_ResourceNotFound", "BadRequest_NotFound", "Internal_RecordNotFound"}:
        return NotFoundError(message, status=status, code=code, service=SERVICE)
    return RemoteError(message, status=status, code=code, service=SERVICE)


def classify(response: httpx.Response) -> Verdict | None:
    """A 5xx to a POST is not resent blind: BC may have made the record before the gateway gave
    up (504 after commit). ``create`` turns it into ``OutcomeUnknown`` and callers look it up."""
    if response.status_code >= 500 and response.request.method == "POST":
        return Verdict.OK
    return None


#: Content-Type of an ``attachmentContent`` upload: raw bytes, never JSON or base64.
CONTENT_TYPE = "application/octet-stream"
#: Answers to reading ``attachmentContent`` that mean "this service does not serve it".
_UNREADABLE = {404, 405, 501}


class _NextLink:
    """Where ``@odata.nextLink`` points, as an absolute URL.

    BC sends absolute links. A relative one is resolved as OData says, against the page's
    ``@odata.context`` (the service root), unless it plainly continues the page's own path
    (``vendors?$skiptoken=…`` after ``…/companies(…)/vendors``), which is resolved against the
    page URL. Either way a host-relative ``/v2.0/…`` link is never glued onto the API root twice.
    """

    def __init__(self, first_url: str) -> None:
        self.current = first_url

    def __call__(self, body: Any) -> tuple[str, dict[str, Any] | None] | None:
        link = body.get("@odata.nextLink") if isinstance(body, dict) else None
        if not link:
            return None
        link = str(link)
        context = body.get("@odata.context")
        base = self.current
        first_segment = urlsplit(link).path.split("/")[0]
        last_segment = urlsplit(self.current).path.rstrip("/").rsplit("/", 1)[-1]
        if isinstance(context, str) and urlsplit(context).scheme in {"http", "https"} \
                and first_segment != last_segment:
            base = context
        self.current = urljoin(base, link)
        return self.current, None


def odata_string(value: str) -> str:
    """An OData string literal: single quotes, with ``'`` doubled."""
    return "'" + value.replace("'", "''") + "'"


def _query(params: dict[str, str]) -> str:
    # Spaces as %20 (never "+"), and keep $ and the OData punctuation readable.
    return "&".join(f"{quote(k, safe='$')}={quote(v, safe=chr(39) + '(),:$')}" for k, v in params.items())


class BusinessCentral:
    """The entities this plugin touches, for one environment (``settings.api_base``)."""

    def __init__(self, http: HttpClient, authenticator: MsalAuthenticator | None = None, *,
                 base_url: str = "", owns_authenticator: bool = True) -> None:
        self.http = http
        self.authenticator = authenticator
        self._owns_authenticator = owns_authenticator
        #: The API root ``http`` was made for; relative next links are resolved from it.
        self.base_url = base_url.rstrip("/") + "/" if base_url else ""

    def close(self) -> None:
        """Close msal's HTTP client unless it is the workspace's shared one (core closes ``http``)."""
        if self.authenticator is not None and self._owns_authenticator:
            self.authenticator.close()

    @classmethod
    def for_context(cls, ctx: Context, secret: str) -> BusinessCentral:
        settings = ctx.settings_as(Dynamics365Settings)
        authenticator = shared_authenticator(ctx, settings, secret)
        http = ctx.http(
            settings.api_base, service=SERVICE, auth=authenticator,
            error_parser=parse_error, classify=classify, timeout=settings.timeout,
            headers={"Accept": "application/json"},
        )
        return cls(http, authenticator, base_url=settings.api_base, owns_authenticator=False)

    # -- reading -----------------------------------------------------------------------------

    def collection(self, path: str, params: dict[str, str] | None = None) -> Iterator[dict[str, Any]]:
        """Every entity of a collection, following ``@odata.nextLink`` page by page."""
        url = f"{path}?{_query(params)}" if params else path
        for page in iter_pages(self.http, url, next_page=_NextLink(urljoin(self.base_url, url))):
            # OData wraps a collection as {"value": [...]}; take a bare array as it comes too.
            yield from page if isinstance(page, list) else page.get("value", [])

    def companies(self) -> list[dict[str, Any]]:
        return list(self.collection("companies"))

    def vendors(self, company: str, filter_: str | None = None, *, select: str | None = None,
                top: int | None = None) -> list[dict[str, Any]]:
        params: dict[str, str] = {}
        if filter_:
            params["$filter"] = filter_
        if select:
            params["$select"] = select
        if top:
            params["$top"] = str(top)
        return list(self.collection(f"companies({company})/vendors", params))

    def iter_vendors(self, company: str, select: str) -> Iterator[dict[str, Any]]:
        return self.collection(f"companies({company})/vendors", {"$select": select})

    def find(self, company: str, entity: str, filter_: str) -> list[dict[str, Any]]:
        return list(self.collection(f"companies({company})/{entity}", {"$filter": filter_}))

    def lines(self, company: str, entity: str, document_id: str, lines_entity: str) -> list[dict[str, Any]]:
        return list(self.collection(f"companies({company})/{entity}({document_id})/{lines_entity}"))

    def get(self, company: str, path: str) -> dict[str, Any]:
        """One entity, with its current ``@odata.etag``."""
        result: dict[str, Any] = self.http.get(f"companies({company})/{path}").json()
        return result

    def content_sha256(self, company: str, entity: str, attachment_id: str) -> str | None:
        """The SHA-256 of an attachment's content, read as a stream (it may be hundreds of MB).

        ``None`` when the service does not serve the content back (reading ``attachmentContent``
        is OData media convention, not documented for BC): callers then decide by size alone.
        """
        digest = hashlib.sha256()
        with self.http.stream("GET", f"companies({company})/{entity}({attachment_id})/attachmentContent",
                              headers={"Accept": "*/*"}, check=False) as response:
            if response.status_code in _UNREADABLE:
                return None
            if not response.is_success:
                response.read()
                self.http.raise_for_status(response)
            for chunk in response.iter_bytes():
                digest.update(chunk)
        return digest.hexdigest()

    # -- writing -----------------------------------------------------------------------------

    def create(self, company: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST a new record. No answer, or a 5xx (which BC may send after committing), raises
        ``OutcomeUnknown``: the caller looks the record up before it ever sends the POST again."""
        try:
            response = self.http.post(f"companies({company})/{path}", json=body)
        except OutcomeUnknown:
            raise
        except RemoteError as exc:
            if (exc.status or 0) < 500:
                raise
            raise OutcomeUnknown(f"POST {path}: Business Central answered {exc.status}, and the record may have been "
                                 f"made all the same; look it up before sending again ({exc})",
                                 status=exc.status, code=exc.code, service=SERVICE) from exc
        result: dict[str, Any] = response.json()
        return result

    def patch(self, company: str, path: str, body: dict[str, Any], etag: str) -> dict[str, Any]:
        """Change fields of an entity, only if it is still the version read (``If-Match: <etag>``).

        A 412 ``Request_EntityChanged`` means someone changed it since: the caller reads it again.
        Resending after a lost answer is safe: the same values again, or a 412 if they landed.
        """
        response = self.http.request("PATCH", f"companies({company})/{path}", json=body,
                                     headers={"If-Match": etag}, idempotent=True)
        result: dict[str, Any] = response.json() if response.content else {}
        return result

    def delete(self, company: str, path: str, *, etag: str = "*") -> None:
        """Delete a record. ``If-Match: *`` (as Microsoft's own S2S sample sends) for one we just made,
        whose create answer's etag goes stale as soon as a line or total changes it; the etag read
        when only that version may go (a 412 ``Request_EntityChanged`` otherwise)."""
        try:
            self.http.request("DELETE", f"companies({company})/{path}", headers={"If-Match": etag})
        except NotFoundError:
            pass  # gone already: a resent DELETE whose first answer was lost, or someone else removed it

    def upload_content(self, company: str, entity: str, attachment_id: str, media_type: str,
                       chunks: Callable[[], Iterable[bytes]]) -> None:
        """Step two of an attachment: PATCH the raw bytes (streamed) into ``attachmentContent``.

        ``If-Match: *`` because the record was just made by us; resending replaces the content,
        so the call is safe to retry. The body is the raw file, sent as
        ``application/octet-stream`` whatever the file is: the one type known to work for every
        file (Microsoft's page lists ``application/json`` here, which is a documentation error).
        """
        self.http.request(
            "PATCH", f"companies({company})/{entity}({attachment_id})/attachmentContent",
            content=chunks, headers={"If-Match": "*", "Content-Type": CONTENT_TYPE},
            idempotent=True,
        )
