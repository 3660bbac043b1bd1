"""The Billit wire protocol: base URLs, headers, error bodies, API-key credentials.

Everything goes through core's ``ctx.http`` (retries, backoff, ``Retry-After``, budget); the OAuth
login and its refresh live in ``auth`` (refresh in time and on ``AccessTokenExpired``).

Billit's facts this module encodes:
- API on ``api.billit.be`` / ``api.sandbox.billit.be``; login page ``/Account/Logon`` on
  ``my.billit.be`` / ``my.sandbox.billit.be``; tokens at ``POST /OAuth2/token`` (not under /v1).
- Token requests carry a JSON body (Billit's OAuth page: "body type is set to Application/json
  ... Do not include authorisation in header ... Parameters are in Json body").
- Headers: ``ApiKey`` or ``Authorization: Bearer``, ``PartyID`` (the company),
  ``ContextPartyID`` (an accountant's own company), ``Accept: application/json``.
- Errors: ``{"errors": [{"Code": "...", "Description": "..."}]}``; an expired access token
  answers ``{"errors": [{"Code": "AccessTokenExpired"}]}``.
- JSON numbers are doubles on the wire: they are parsed straight to ``Decimal``.
"""

from __future__ import annotations

import functools
import json
import urllib.parse
from contextlib import AbstractContextManager
from decimal import Decimal
from typing import Any

import httpx
from invoicesync import AuthError, Context, RateLimited, RemoteError, ServerError
from invoicesync.http import HttpClient, TokenAuth, Verdict, relogin_hint

from .settings import BillitSettings

SERVICE = "billit"

#: Answers that mean "this access token is no good, but a refresh may fix it".
REFRESHABLE_CODES = frozenset({"AccessTokenExpired", "InvalidAccessToken"})


# -- error bodies ------------------------------------------------------------------------------


def error_fields(response: httpx.Response) -> tuple[str | None, str | None]:
    """``(Code, Description)`` of a Billit error body; also accepts the flat ``{"Code", ...}`` form."""
    try:
        body = json.loads(response.content or b"null")
    except (ValueError, httpx.ResponseNotRead):
        return None, None
    if isinstance(body, list):  # a bare list of errors
        body = {"errors": body}
    if isinstance(body, dict):
        errors = body.get("errors") or body.get("Errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            codes = [str(e.get("Code")) for e in errors if isinstance(e, dict) and e.get("Code")]
            texts = [str(e.get("Description")) for e in errors if isinstance(e, dict) and e.get("Description")]
            return (codes[0] if codes else None), ("; ".join(texts) or None)
        code = body.get("Code")
        text = body.get("Description") or body.get("Message") or body.get("ErrorMessage")
        if code or text:
            return (str(code) if code else None), (str(text) if text else None)
    return None, None


def parse_error(response: httpx.Response, *, relogin: str | None = None) -> RemoteError:
    """Turn a Billit error answer into a clear ``RemoteError`` (core's ``error_parser`` hook).
    ``relogin`` (``relogin_hint``) is named by every 401: it is the fix when the login died."""
    code, description = error_fields(response)
    status = response.status_code
    message = description or code or response.reason_phrase or "error"
    if status == 401:
        fix = f"; if the login expired or was revoked, {relogin}" if relogin else ""
        message += f" (the login is not valid, or it cannot reach this company or document{fix})"
    kind: type[RemoteError] = RemoteError
    if status == 429:
        kind = RateLimited
    elif status >= 500:
        kind = ServerError
    return kind(f"{response.request.method} {response.request.url.path}: {message}",
                status=status, code=code, service=SERVICE)


def classify(response: httpx.Response) -> Verdict | None:
    """Billit's token signals: refresh on ``AccessTokenExpired``; never burn a (single-use)
    refresh token on a 401 that a refresh cannot fix (revoked token, a company out of reach)."""
    if response.is_success or response.status_code not in (400, 401, 403):
        return None
    if not response.is_stream_consumed:
        try:
            response.read()  # error bodies are small; streamed downloads only read them on failure
        except httpx.HTTPError:
            return None
    code, _ = error_fields(response)
    if code in REFRESHABLE_CODES:
        return Verdict.REFRESH
    if response.status_code == 401 and code:
        return Verdict.OK
    return None  # core default: 401 without a Billit code refreshes once


def loads(content: bytes) -> Any:
    """Billit JSON with exact amounts: doubles become ``Decimal`` before they can lose a cent."""
    return json.loads(content, parse_float=Decimal)


# -- credentials -------------------------------------------------------------------------------


class ApiKeyAuth:
    """Puts the ``ApiKey`` header on each request; an API key cannot be refreshed."""

    def __init__(self, key: str) -> None:
        self._key = key

    def apply(self, request: httpx.Request) -> None:
        request.headers["ApiKey"] = self._key

    def refresh(self) -> bool:
        return False


# -- the API client ----------------------------------------------------------------------------


class BillitClient:
    """Billit's REST API for one account; every call names the company by its ``PartyID``."""

    def __init__(self, ctx: Context, settings: BillitSettings, *, api_key: str | None = None) -> None:
        self.settings = settings
        auth: ApiKeyAuth | TokenAuth
        if settings.auth == "api_key":
            key = api_key or ctx.secrets.get("api_key")
            if not key:
                raise AuthError(f"no Billit API key stored for account {ctx.account.name!r}; "
                                "run `invoicesync connect` (or set INVOICESYNC_<ACCOUNT>_API_KEY)")
            auth = ApiKeyAuth(key)
        else:
            from .auth import token_auth  # auth builds on this module's error parsing

            auth = token_auth(ctx, settings)
        headers = {"Accept": "application/json"}
        if settings.context_party_id is not None:
            headers["ContextPartyID"] = str(settings.context_party_id)
        errors = functools.partial(parse_error, relogin=relogin_hint(ctx.account))
        self.http: HttpClient = ctx.http(settings.api_base(), service=SERVICE, auth=auth,
                                         classify=classify, error_parser=errors, headers=headers)

    @staticmethod
    def _party(party_id: str | None) -> dict[str, str]:
        return {"PartyID": party_id} if party_id else {}

    def get_json(self, url: str, *, party_id: str | None = None, params: dict[str, Any] | None = None) -> Any:
        return self._json(self.http.get(url, params=params, headers=self._party(party_id)))

    def get_page(self, url: str, *, party_id: str | None = None, params: dict[str, Any] | None = None
                 ) -> tuple[Any, str]:
        """The JSON answer and the URL it came from (a relative ``NextPageLink`` is relative to it)."""
        response = self.http.get(url, params=params, headers=self._party(party_id))
        return self._json(response), str(response.request.url)

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        # Without the URL as text: an order's detail (once per document) has no page link to resolve.
        try:
            return loads(response.content)
        except ValueError as exc:
            raise RemoteError(f"GET {response.request.url.path}: the answer is not JSON ({exc})",
                              status=response.status_code, service=SERVICE) from None

    def follow(self, link: str, came_from: str) -> str:
        """Where a ``NextPageLink`` points, on the configured API host.

        Billit does not document whether the link is absolute or relative. A relative one is
        resolved against the page it came with (RFC 3986). An absolute one keeps its path and
        query but is sent to the configured API origin: behind a TLS-terminating proxy a server
        may write ``http://`` or an internal host name into it, and the credentials must never go
        anywhere but the API host this account was set up for."""
        target = urllib.parse.urlsplit(urllib.parse.urljoin(came_from, link.strip()))
        origin = urllib.parse.urlsplit(self.settings.api_base())
        return urllib.parse.urlunsplit((origin.scheme, origin.netloc, target.path, target.query, ""))

    def post_json(self, url: str, *, party_id: str, body: Any, idempotency_key: str | None = None) -> Any:
        """A write. With ``idempotency_key`` (Billit's ``Idempotent-Key`` header) a lost answer is
        resent safely: Billit answers a repeat with the first one's result instead of doing it twice."""
        headers = self._party(party_id)
        if idempotency_key:
            headers["Idempotent-Key"] = idempotency_key
        response = self.http.post(url, json=body, headers=headers, idempotent=idempotency_key is not None)
        try:
            return loads(response.content)
        except ValueError as exc:
            raise RemoteError(f"POST {response.request.url.path}: the answer is not JSON ({exc})",
                              status=response.status_code, service=SERVICE) from None

    def delete(self, url: str, *, party_id: str) -> None:
        self.http.request("DELETE", url, headers=self._party(party_id))

    def stream(self, url: str, *, party_id: str | None = None) -> AbstractContextManager[httpx.Response]:
        # The HTTP client's own context manager: one generator frame less per downloaded file.
        return self.http.stream("GET", url, headers=self._party(party_id))

    def account_information(self) -> dict[str, Any]:
        # No PartyID: Billit would otherwise answer for that company only; without it, every company.
        body = self.get_json("/v1/account/accountInformation")
        if not isinstance(body, dict):
            raise RemoteError("accountInformation: expected a JSON object", service=SERVICE)
        return body
