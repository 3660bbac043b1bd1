"""A lean HTTP/1.1 connection pool under httpx's ``HTTPTransport``.

httpcore's ``ConnectionPool`` re-examines every pooled connection on every request and on every
response close, under one pool-wide lock: each ``has_expired()`` polls the socket (a syscall that
releases the GIL, inviting a thread switch). With 8 connections and 8+ threads that was ~11 polls
per request, a quarter of the GIL-held time in ``handle_request`` and 25-50 times the context
switches of a plain sequential script.

Here each origin keeps its idle connections on a stack (the most recently used is reused first, so
the others age out): a request pops one and checks only that one (keep-alive expiry and one
readability poll, as httpcore does for it), or opens a new one while fewer than
``max_connections`` are open; a response, once closed, puts its connection back if httpcore left
it idle (the answer was read to the end and the server keeps it alive), and closes it otherwise.
The lock is held only to push or pop. HTTP/1.1 only: a connection serves one request at a time.
"""

from __future__ import annotations

import collections
import ssl
import threading
import time
import typing
from collections.abc import Iterator
from types import TracebackType

import httpcore
import httpx

_Key = tuple[bytes, bytes, int]
_SCHEMES = (b"http", b"https", b"ws", b"wss")
#: httpx's defaults (``httpx.HTTPTransport``'s ``limits``)
_DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)


class LeanPool:
    """What ``HTTPTransport`` needs of its ``_pool``: ``handle_request``, ``close`` and the context
    manager, for direct (unproxied) HTTP/1.1 connections."""

    def __init__(self, ssl_context: ssl.SSLContext | None, *, max_connections: int | None = 100,
                 max_keepalive_connections: int | None = 20, keepalive_expiry: float | None = 5.0,
                 network_backend: httpcore.NetworkBackend | None = None) -> None:
        self._ssl_context = ssl_context
        self._max_connections = max_connections if max_connections is not None else 2 ** 31
        idle = max_keepalive_connections if max_keepalive_connections is not None else self._max_connections
        self._max_idle = min(idle, self._max_connections)
        self._keepalive_expiry = keepalive_expiry
        self._backend = network_backend if network_backend is not None else httpcore.SyncBackend()
        self._lock = threading.Lock()
        self._freed = threading.Condition(self._lock)
        self._waiting = 0  # requests waiting for a connection to be freed (all are open and busy)
        #: per origin, its idle connections and when each was put back, the most recent last
        self._idle: dict[_Key, collections.deque[tuple[httpcore.HTTPConnection, float]]] = {}
        self._idle_count = 0
        #: every connection opened and not yet closed, idle or busy: ``close()`` closes them all
        self._open: set[httpcore.HTTPConnection] = set()

    # -- httpcore's RequestInterface, as HTTPTransport uses it ---------------------------------

    def handle_request(self, request: httpcore.Request) -> httpcore.Response:
        url = request.url
        if url.scheme not in _SCHEMES:
            raise httpcore.UnsupportedProtocol(
                "Request URL is missing an 'http://' or 'https://' protocol." if not url.scheme
                else f"Request URL has an unsupported protocol '{url.scheme.decode()}://'.")
        key = (url.scheme, url.host, url.port or (443 if url.scheme in (b"https", b"wss") else 80))
        timeouts = request.extensions.get("timeout", {})
        while True:
            connection = self._acquire(key, url, timeouts.get("pool"))
            try:
                response = connection.handle_request(request)
            except httpcore.ConnectionNotAvailable:  # not expected: a connection here serves one request
                self._discard(connection)
                continue
            except BaseException:
                # httpcore has closed it unless it went back to idle; either way it is not reused
                # for a request that failed on it.
                self._discard(connection)
                raise
            response.stream = _PooledStream(typing.cast(typing.Iterable[bytes], response.stream), self, key,
                                            connection)
            return response

    def close(self) -> None:
        with self._lock:
            closing = list(self._open)
            self._open.clear()
            self._idle.clear()
            self._idle_count = 0
            if self._waiting:
                self._freed.notify_all()
        for connection in closing:
            connection.close()

    def __enter__(self) -> LeanPool:
        return self

    def __exit__(self, exc_type: type[BaseException] | None = None, exc_value: BaseException | None = None,
                 traceback: TracebackType | None = None) -> None:
        self.close()

    # -- counts, for tests and diagnostics ------------------------------------------------------

    @property
    def open_connections(self) -> int:
        return len(self._open)

    @property
    def idle_connections(self) -> int:
        return self._idle_count

    # -- taking and giving back ------------------------------------------------------------------

    def _acquire(self, key: _Key, url: httpcore.URL, pool_timeout: float | None) -> httpcore.HTTPConnection:
        deadline = None if pool_timeout is None else time.monotonic() + pool_timeout
        while True:
            evicted = None
            with self._lock:
                stack = self._idle.get(key)
                if stack:
                    connection, _ = stack.pop()
                    self._idle_count -= 1
                else:
                    if len(self._open) >= self._max_connections:
                        evicted = self._evict_idle()  # one of another origin's, to make room
                        if evicted is None:
                            self._wait(deadline)
                            continue
                    connection = self._new_connection(url)
                    self._open.add(connection)
            if evicted is not None:
                evicted.close()
            if connection.is_idle() and connection.has_expired():
                # The one check, of the one connection about to be reused: its keep-alive ran out,
                # or its socket is readable while idle, i.e. the server closed it.
                self._discard(connection)
                continue
            return connection

    def _new_connection(self, url: httpcore.URL) -> httpcore.HTTPConnection:
        return httpcore.HTTPConnection(origin=url.origin, ssl_context=self._ssl_context,
                                       keepalive_expiry=self._keepalive_expiry, network_backend=self._backend)

    def _evict_idle(self) -> httpcore.HTTPConnection | None:
        """Under the lock: take the longest-idle connection of any origin out of the pool."""
        oldest: collections.deque[tuple[httpcore.HTTPConnection, float]] | None = None
        for stack in self._idle.values():  # one entry per origin: a handful at most
            if stack and (oldest is None or stack[0][1] < oldest[0][1]):
                oldest = stack
        if oldest is None:
            return None
        connection, _ = oldest.popleft()
        self._idle_count -= 1
        self._open.discard(connection)
        return connection

    def _wait(self, deadline: float | None) -> None:
        """Under the lock: wait for a connection to be given back or closed."""
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise httpcore.PoolTimeout("Timed out waiting for a connection from the pool.")
        self._waiting += 1
        try:
            self._freed.wait(remaining)
        finally:
            self._waiting -= 1

    def _release(self, key: _Key, connection: httpcore.HTTPConnection) -> None:
        """A response was closed: keep its connection for the next request if httpcore left it idle
        (the answer read to its end, keep-alive on both sides), else close it."""
        if connection.is_idle():
            now = time.monotonic()
            expired = None
            with self._lock:
                kept = connection in self._open and self._idle_count < self._max_idle
                if kept:
                    stack = self._idle.get(key)
                    if stack is None:
                        stack = self._idle[key] = collections.deque()
                    stack.append((connection, now))
                    self._idle_count += 1
                    # The longest-idle one of this origin past its keep-alive goes now, not when
                    # it would be reached (its timestamp alone tells: no syscall).
                    if self._keepalive_expiry is not None and now - stack[0][1] > self._keepalive_expiry:
                        expired, _ = stack.popleft()
                        self._idle_count -= 1
                        self._open.discard(expired)
                    if self._waiting:
                        self._freed.notify()
            if expired is not None:
                expired.close()
            if kept:
                return
        self._discard(connection)

    def _discard(self, connection: httpcore.HTTPConnection) -> None:
        """Close a connection that will not be reused, and free its place."""
        with self._lock:
            self._open.discard(connection)
            if self._waiting:
                self._freed.notify()
        connection.close()


class _PooledStream:
    """A response's body as httpcore streams it; closing it gives the connection back."""

    __slots__ = ("_connection", "_key", "_pool", "_stream")

    def __init__(self, stream: typing.Iterable[bytes], pool: LeanPool, key: _Key,
                 connection: httpcore.HTTPConnection) -> None:
        self._stream: typing.Iterable[bytes] | None = stream
        self._pool = pool
        self._key = key
        self._connection = connection

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._stream or ()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is None:
            return
        try:
            if hasattr(stream, "close"):
                stream.close()  # httpcore marks the connection idle, or closes it if the answer was cut short
        finally:
            self._pool._release(self._key, self._connection)


class LeanTransport(httpx.HTTPTransport):
    """``httpx.HTTPTransport`` (its request and response mapping, its exception mapping) over a
    ``LeanPool`` instead of httpcore's ``ConnectionPool``."""

    def __init__(self, ssl_context: ssl.SSLContext, limits: httpx.Limits | None = None) -> None:
        # ``HTTPTransport.__init__`` would build an httpcore pool only to be replaced: every method
        # of HTTPTransport uses nothing but ``self._pool``.
        limits = limits if limits is not None else _DEFAULT_LIMITS
        self._pool = LeanPool(  # type: ignore[assignment]
            ssl_context, max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections, keepalive_expiry=limits.keepalive_expiry)
