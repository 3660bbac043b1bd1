"""The connection pool under ``HttpClient``: an ``httpx.Client`` without the parts of it we never use.

``HttpClient`` builds each request with ``build`` (the pool's base URL, default headers and timeout)
and sends it with ``send``, straight to the pool's transport: invoicesync signs requests itself (its
``Authenticator``), never follows redirects and keeps no cookies, so ``httpx.Client.send``'s auth
flow, redirect loop, cookie jar and event hooks were ~60 us of ~350 per request at 0 ms latency, and
``build_request`` parsed every URL twice (~30 us more).
"""

from __future__ import annotations

import datetime
import functools
import logging
import os
import ssl
import time
from collections.abc import Iterator
from typing import Any

import httpx

from ._connections import LeanTransport

#: httpx's own logger: ``-vv`` shows its "HTTP Request: ..." line per request, kept here as it was.
_httpx_log = logging.getLogger("httpx")


class _NoCookies(httpx.Cookies):
    """A cookie jar that keeps nothing. The APIs we call authenticate every request with a header
    and keep no session, and reading each answer's ``Set-Cookie`` through ``http.cookiejar`` costs
    more CPU than anything else httpx does per response."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class _Pool(httpx.Client):
    """``httpx.Client`` without cookie handling (see ``_NoCookies``), whose own transport (for
    requests not sent through a proxy) keeps its connections in a ``LeanPool``."""

    _no_cookies = _NoCookies()

    @property  # type: ignore[misc]
    def cookies(self) -> httpx.Cookies:
        return self._no_cookies

    def _init_transport(self, verify: ssl.SSLContext | str | bool = True, cert: Any = None, trust_env: bool = True,
                        http1: bool = True, http2: bool = False, limits: httpx.Limits | None = None,
                        transport: httpx.BaseTransport | None = None, **extra: Any) -> httpx.BaseTransport:
        """The transport httpx would make, over a ``LeanPool``. Only the default transport: an
        injected one is used as given, and the ones httpx mounts for proxies (``HTTP(S)_PROXY``
        with ``trust_env``) are httpx's own, as before."""
        # ``**extra``: whatever else another httpx version passes (0.27 still sends ``app``), handed on.
        if transport is None and isinstance(verify, ssl.SSLContext) and cert is None and http1 and not http2:
            return LeanTransport(verify, limits)
        return super()._init_transport(verify=verify, cert=cert, trust_env=trust_env, http1=http1, http2=http2,
                                       limits=limits if limits is not None else httpx.Limits(
                                           max_connections=100, max_keepalive_connections=20),
                                       transport=transport, **extra)


def new_pool(base_url: str = "", *, transport: httpx.BaseTransport | None = None,
             verify: str | bool | ssl.SSLContext = True, timeout: float = 60.0,
             headers: dict[str, str] | None = None) -> httpx.Client:
    """The ``httpx.Client`` (connection pool) under one or more ``HttpClient``s."""
    return _Pool(
        base_url=base_url,
        transport=transport,
        verify=verify if isinstance(verify, ssl.SSLContext) else ssl_context(verify),
        timeout=timeout,
        headers={"User-Agent": "invoicesync/0.1 (+https://github.com/invoicesync)", **(headers or {})},
        follow_redirects=False,
    )


def ssl_context(verify: str | bool) -> ssl.SSLContext:
    """One TLS context per trust setting for the process: loading the system CAs costs ~25 ms of CPU
    and ~2.5 MB that is never given back, and a context is safe to share between connections."""
    if isinstance(verify, str):  # a CA bundle path, e.g. a sandbox's throw-away CA
        stat = os.stat(verify)  # a bundle rewritten in place (a new sandbox CA) is a new context
        return _ca_file_context(verify, stat.st_mtime_ns, stat.st_size)
    return _default_context(verify)


@functools.cache
def _ca_file_context(path: str, mtime_ns: int, size: int) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=path)


@functools.cache
def _default_context(verify: bool) -> ssl.SSLContext:
    return httpx.create_ssl_context(verify=verify)


def build(client: httpx.Client, method: str, url: str, *, content: Any = None, json: Any = None,
          params: Any = None, headers: dict[str, str] | None = None, timeout: float | None = None) -> httpx.Request:
    """``client.build_request(...)``, for the common case (our pool, a path under its base URL, no
    query parameters, headers that add to its defaults) in one URL parse instead of two; anything
    else is left to httpx."""
    headers = headers or {}
    base = str(client.base_url)
    if client.base_url.raw_path == b"/" and not base.endswith("/"):
        base += "/"  # a bare host prints without its root path
    if (not isinstance(client, _Pool) or params is not None or not url.startswith("/") or url.startswith("//")
            or "#" in url or not base.endswith("/") or client.params):
        return client.build_request(method, url, content=content, json=json, params=params, headers=headers,
                                    timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT)
    defaults = client.headers.multi_items()
    if headers and {k.lower() for k in headers} & {k.lower() for k, _ in defaults}:
        return client.build_request(method, url, content=content, json=json, headers=headers,
                                    timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT)
    # httpx joins base and path by ``base.raw_path + path.lstrip("/")``: the same string.
    limits = client.timeout if timeout is None else httpx.Timeout(timeout)
    return httpx.Request(method, _parsed_url(base + url[1:]), content=content, json=json,
                         headers=[*defaults, *headers.items()], extensions={"timeout": limits.as_dict()})


@functools.lru_cache(maxsize=256)
def _parsed_url(url: str) -> httpx.URL:
    """``httpx.URL(url)``, parsed once per distinct URL: a parse was a quarter of a request's
    building, and many requests go to a fixed endpoint (Dropbox's, Business Central's). A URL is
    immutable, and ``httpx.Request`` given one keeps its parse as it is."""
    return httpx.URL(url)


def send(client: httpx.Client, request: httpx.Request, *, stream: bool) -> httpx.Response:
    """``client.send(request, stream=stream)``: for our own pool, straight to its transport (what
    ``httpx.Client._send_single_request`` does, less what ``_Pool`` never uses); any other client
    (or an httpx without ``_transport_for_url``) goes through ``httpx.Client.send``."""
    transport_for = getattr(client, "_transport_for_url", None)
    if not isinstance(client, _Pool) or transport_for is None or client.follow_redirects:
        return client.send(request, stream=stream)
    if client.is_closed:
        raise RuntimeError("Cannot send a request, as the client has been closed.")
    started = time.perf_counter()
    try:
        response = transport_for(request.url).handle_request(request)
    except httpx.RequestError as exc:
        exc.request = request  # as httpx.Client does: the error names what was being sent
        raise
    response.request = request
    response.stream = _Timed(response.stream, response, started)
    if _httpx_log.isEnabledFor(logging.INFO):
        _httpx_log.info('HTTP Request: %s %s "%s %d %s"', request.method, request.url, response.http_version,
                        response.status_code, response.reason_phrase)
    if not stream:
        try:
            response.read()
        except BaseException:
            response.close()
            raise
    return response


class _Timed(httpx.SyncByteStream):
    """The answer's body stream, setting ``response.elapsed`` when closed (as httpx.Client does)."""

    def __init__(self, stream: httpx.SyncByteStream, response: httpx.Response, started: float) -> None:
        self._stream = stream
        self._response = response
        self._started = started

    def __iter__(self) -> Iterator[bytes]:
        yield from self._stream

    def close(self) -> None:
        self._response.elapsed = datetime.timedelta(seconds=time.perf_counter() - self._started)
        self._stream.close()
