"""The one HTTP client every plugin uses: retries, backoff, ``Retry-After``, budget, token refresh.

Retry rules (what may be sent again, and when):

- **Reads** (GET, HEAD, OPTIONS) and requests marked ``idempotent=True`` (PUT, DELETE, a PATCH with
  ``If-Match``, a write that commits nothing such as opening an upload session, an append at an
  explicit offset) are resent after a lost answer, a 5xx or a throttle, with backoff.
- **Writes whose outcome can be looked up** (POST by default) are sent once. A lost answer (read
  timeout, dropped connection after sending) and a 5xx answer both leave the outcome unknown: the
  server may have done the work before failing (a Business Central 504 after the draft was made).
  They raise ``OutcomeUnknown`` and the caller looks the result up before writing again.
- **Throttles** (429, and whatever the plugin's ``classify`` calls transient on a 4xx, such as
  Drive's 403 ``rateLimitExceeded`` or Dropbox's 409 ``too_many_write_operations``) are refusals
  made before any work, so every request, writes included, is resent after ``Retry-After``.
  A 503 is *not* one of them, even with ``Retry-After``: none of the services we talk to
  promises that a 503 comes before processing (Dropbox and Business Central list it among their
  transient server errors, a gateway can send it after the backend worked), so it is a 5xx like
  the others. Its ``Retry-After`` still pauses the account's budget.
- **Connection failures before sending** (connect errors, pool timeouts) never reached the server
  and are resent for every kind of request.
- Token refreshes have their own rule, in ``OAuth2Client.refresh``.
"""

from __future__ import annotations

import logging
import random
import ssl
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from enum import Enum
from typing import Any, Protocol

import httpx

from ..errors import InvoiceSyncError, OutcomeUnknown, RateLimited, RemoteError, ServerError
from ._budget import RequestBudget
from ._counters import HTTP_COUNTERS
from ._pool import build, new_pool, send, ssl_context
from ._retry_after import retry_after_seconds

__all__ = ["Authenticator", "ErrorParser", "HttpClient", "ResponseClassifier", "Verdict", "new_pool", "ssl_context"]

log = logging.getLogger("invoicesync.http")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class Verdict(Enum):
    OK = "ok"  #: hand the response to the caller (success, or an error to report)
    RETRY = "retry"  #: transient: back off and send again
    REFRESH = "refresh"  #: the access token expired: refresh it and send again


class ResponseClassifier(Protocol):
    """A plugin's reading of a response, for signals a status code alone does not carry
    (Drive's 403 ``rateLimitExceeded``, Dropbox's 401 ``expired_access_token``). Return
    ``None`` to fall back to the default: 429 and 5xx retry, 401 refreshes."""

    def __call__(self, response: httpx.Response) -> Verdict | None: ...


class Authenticator(Protocol):
    """Puts credentials on a request; ``refresh`` gets new ones after the service refused them."""

    def apply(self, request: httpx.Request) -> None: ...

    def refresh(self) -> bool:
        """Renew the credentials; ``False`` if they cannot be renewed (the 401 then stands)."""
        ...


#: Turns an error answer into the exception to raise: usually a ``RemoteError``, but a plugin may
#: recognise a setup problem and return an ``AuthError`` or ``ConfigError`` that says what to fix.
ErrorParser = Callable[[httpx.Response], InvoiceSyncError]
Content = bytes | str | Callable[[], Iterable[bytes]] | None


class _Transient(Exception):
    def __init__(self, response: httpx.Response | None, retry_after: float | None, cause: Exception | None = None):
        super().__init__(str(cause) if cause else f"HTTP {response.status_code if response else '?'}")
        self.response = response
        self.retry_after = retry_after
        self.cause = cause


class HttpClient:
    """An ``httpx.Client`` wrapped with the retry and auth policy of invoicesync.

    - 429 and 5xx (and whatever ``classify`` calls transient) are retried with exponential
      backoff and full jitter; ``Retry-After`` is honoured and shared through the ``Budget``.
    - Connection errors are retried. A timeout *after* a non-idempotent request was sent, and a
      5xx answer to one, raise ``OutcomeUnknown``: the caller must look the result up instead of
      sending it again (see the module docstring for the full rules).
    - A 401 (or ``classify`` → ``REFRESH``) refreshes the token and resends, once per refused token.
    - Non-2xx answers raise ``error_parser(response)`` (default: ``RemoteError``) unless
      ``check=False``.
    """

    def __init__(
        self,
        base_url: str = "",
        *,
        service: str = "http",
        auth: Authenticator | None = None,
        classify: ResponseClassifier | None = None,
        error_parser: ErrorParser | None = None,
        budget: RequestBudget | None = None,
        transport: httpx.BaseTransport | None = None,
        verify: str | bool | ssl.SSLContext = True,
        timeout: float = 60.0,
        max_attempts: int = 6,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        max_retry_after: float = 300.0,
        headers: dict[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        pool: httpx.Client | None = None,
    ) -> None:
        """``pool``: an ``httpx.Client`` shared with other ``HttpClient``s (``Context.http`` keeps one
        per base URL for the whole run); its owner closes it, so ``close()`` here leaves it open.
        ``base_url``, ``transport``, ``verify``, ``timeout`` and ``headers`` are then the pool's."""
        self.service = service
        self.auth = auth
        self.classify = classify
        self.error_parser = error_parser
        self.budget = budget
        self.max_attempts = max_attempts
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.max_retry_after = max_retry_after
        self._sleep = sleep
        self._owns_pool = pool is None
        self._client = pool if pool is not None else new_pool(
            base_url, transport=transport, verify=verify, timeout=timeout, headers=headers)

    # -- public API ------------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        content: Content = None,
        json: Any = None,
        params: Any = None,
        headers: dict[str, str] | None = None,
        idempotent: bool | None = None,
        check: bool = True,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send a request under the retry policy and return the (read) response."""
        with self._send(method, url, content, json, params, headers, idempotent, timeout, stream=False) as response:
            if check:
                self.raise_for_status(response)
            return response

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    @contextmanager
    def stream(
        self,
        method: str,
        url: str,
        *,
        content: Content = None,
        json: Any = None,
        params: Any = None,
        headers: dict[str, str] | None = None,
        idempotent: bool | None = None,
        check: bool = True,
    ) -> Iterator[httpx.Response]:
        """Like ``request`` but the body is not read: iterate ``response.iter_bytes()``."""
        with self._send(method, url, content, json, params, headers, idempotent, None, stream=True) as response:
            if check and not response.is_success:
                response.read()
                self.raise_for_status(response)
            yield response

    def raise_for_status(self, response: httpx.Response) -> None:
        if response.is_success:
            return
        if self.error_parser is not None:
            raise self.error_parser(response)
        raise RemoteError(_short_body(response), status=response.status_code, service=self.service)

    def close(self) -> None:
        if self._owns_pool:
            self._client.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the retry loop ----------------------------------------------------------------------

    @contextmanager
    def _send(
        self,
        method: str,
        url: str,
        content: Content,
        json: Any,
        params: Any,
        headers: dict[str, str] | None,
        idempotent: bool | None,
        timeout: float | None,
        *,
        stream: bool,
    ) -> Iterator[httpx.Response]:
        method = method.upper()
        safe_to_resend = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        # The credentials the service refused during this request. Each refused token earns one
        # refresh while attempts remain (a token may expire, or be revoked, again while a resend
        # waits out a 503's backoff); the same credentials refused twice mean no refresh helps,
        # so that 401 stands, as does one on the last attempt (its refresh would go unused), and
        # one met by a token fresh from a refresh with nothing in between: a service that refuses
        # every new token would otherwise spend a single-use refresh token on every attempt.
        refused: set[frozenset[tuple[str, str]]] = set()
        fresh_token = False

        def attempt(number: int) -> httpx.Response:
            nonlocal fresh_token
            body = content() if callable(content) else content
            request = build(self._client, method, url, content=body, json=json, params=params, headers=headers,
                            timeout=timeout)
            if self.auth is not None:
                self.auth.apply(request)
            slot = self.budget.slot() if self.budget is not None else _null_slot()
            with slot:
                HTTP_COUNTERS.sent(self.service)
                try:
                    response = send(self._client, request, stream=stream)
                except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                    fresh_token = False  # the resend waits out a backoff, in which a token can expire
                    raise _Transient(None, None, exc) from exc  # never reached the server
                except (httpx.ReadTimeout, httpx.WriteTimeout, httpx.RemoteProtocolError, httpx.ReadError) as exc:
                    fresh_token = False
                    if safe_to_resend:
                        raise _Transient(None, None, exc) from exc
                    raise OutcomeUnknown(
                        f"{method} {request.url.path}: no answer after sending ({type(exc).__name__}); "
                        "look the result up before sending again",
                        service=self.service,
                    ) from exc
            verdict = self._verdict(response)
            if verdict is Verdict.REFRESH and self.auth is not None and number < self.max_attempts \
                    and not fresh_token and (sent_with := frozenset(request.headers.multi_items())) not in refused:
                if stream:
                    _read_error_body(response)  # the 401 is handed on if the refresh cannot help
                response.close()
                refused.add(sent_with)
                if self.auth.refresh():
                    fresh_token = True
                    raise _Transient(response, 0.0)
                return response
            fresh_token = False
            if verdict is Verdict.RETRY:
                if stream:
                    # Keep the (small) error body: the final error must carry the server's own words.
                    _read_error_body(response)
                    response.close()
                wait = retry_after_seconds(response)
                if wait is not None and self.budget is not None:
                    self.budget.pause(min(wait, self.max_retry_after))
                if response.status_code >= 500 and not safe_to_resend:
                    raise self._unknown_outcome(method, request, response)
                raise _Transient(response, wait)
            return response

        # A plain loop: a retry library's machinery cost more CPU per request than the rest of
        # this method, and almost every request succeeds at the first attempt.
        number = 1
        while True:
            try:
                response = attempt(number)
                break
            except _Transient as exc:
                if number >= self.max_attempts:
                    raise self._exhausted(method, url, exc) from exc.cause
                wait = self._wait(exc, number)
                HTTP_COUNTERS.retried(self.service)
                log.info("%s: retrying (attempt %d): %s", self.service, number, exc)
                self._sleep(wait)
                number += 1
        try:
            yield response
        finally:
            response.close()
            _unlink_stream(response)

    def _verdict(self, response: httpx.Response) -> Verdict:
        if self.classify is not None:
            verdict = self.classify(response)
            if verdict is not None:
                return verdict
        if response.status_code in RETRY_STATUSES:
            return Verdict.RETRY
        if response.status_code == 401:
            return Verdict.REFRESH
        return Verdict.OK

    def _wait(self, exc: _Transient, attempt_number: int) -> float:
        """How long to wait after failed attempt ``attempt_number`` (1 for the first)."""
        retry_after = exc.retry_after
        if retry_after is not None:
            # Honour the server, with a little jitter so parallel workers do not stampede.
            return min(retry_after, self.max_retry_after) + random.uniform(0, 0.1)
        ceiling = min(self.backoff_max, self.backoff_initial * 2 ** (attempt_number - 1))
        return random.uniform(ceiling / 2, ceiling)

    def _unknown_outcome(self, method: str, request: httpx.Request, response: httpx.Response) -> OutcomeUnknown:
        """A 5xx to a write: the server may have done the work before it failed."""
        if not response.is_stream_consumed:
            _read_error_body(response)
        detail = str(self.error_parser(response)) if self.error_parser is not None else _short_body(response)
        return OutcomeUnknown(
            f"{method} {request.url.path}: the server answered {response.status_code} ({detail}); the write "
            "may have taken effect: look the result up before sending again",
            status=response.status_code, service=self.service,
        )

    def _exhausted(self, method: str, url: str, exc: _Transient) -> InvoiceSyncError:
        response = exc.response
        if response is None:
            where = self._client.base_url.join(url)
            return ServerError(f"{method} {where}: no connection after {self.max_attempts} attempts ({exc.cause})",
                               service=self.service)
        if not response.is_stream_consumed and not response.is_closed:
            _read_error_body(response)
        if response.status_code == 429:
            return RateLimited(
                f"{method} {url}: still rate limited after {self.max_attempts} attempts",
                status=429, service=self.service,
            )
        if self.error_parser is not None and not response.is_success:
            return self.error_parser(response)
        return ServerError(
            f"{method} {url}: {_short_body(response)}", status=response.status_code, service=self.service
        )


def _unlink_stream(response: httpx.Response) -> None:
    """Break the reference cycle in every response (``response.stream`` is a stream that holds the
    response to set its ``elapsed``: ``_pool._Timed``, or httpx's ``BoundSyncStream`` when a request
    goes through ``httpx.Client.send``): garbage in a cycle waits for a full collection, which
    comes seldom in a long run, so each request's objects piled up and the peak RSS grew with the
    number of requests. Once closed, the stream is never read again (httpx checks ``is_closed``)."""
    response.stream = _CLOSED


_CLOSED = httpx.ByteStream(b"")


def _read_error_body(response: httpx.Response) -> None:
    """Read an error answer's body so it can still be quoted once the stream is closed."""
    try:
        response.read()
    except (httpx.HTTPError, httpx.StreamError):
        pass  # no body to quote: the status and reason phrase still say what happened


def _short_body(response: httpx.Response) -> str:
    try:
        text = response.text
    except (httpx.ResponseNotRead, httpx.StreamError):
        text = ""
    return (text[:300] or response.reason_phrase or "error").strip()


@contextmanager
def _null_slot() -> Iterator[None]:
    yield
