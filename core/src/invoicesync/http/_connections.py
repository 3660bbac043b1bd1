"""A lean HTTP/1.1 connection pool, the transport under ``HttpClient``'s ``httpx.Client``.

httpcore's ``ConnectionPool`` re-examines every pooled connection on every request and on every
response close, under one pool-wide lock: each ``has_expired()`` polls the socket (a syscall that
releases the GIL, inviting a thread switch). With 8 connections and 8+ threads that was ~11 polls
per request, a quarter of the GIL-held time in ``handle_request`` and 25-50 times the context
switches of a plain sequential script.

Here each origin keeps its idle connections on a stack (the most recently used is reused first, so
the others age out): a request pops one and checks only that one (keep-alive expiry and one
readability poll, as httpcore does for it), or opens a new one while fewer than
``max_connections`` are open; a response, once closed, puts its connection back if it is idle (the
answer was read to the end and both sides keep it alive), and closes it otherwise. The lock is held
only to push or pop. HTTP/1.1 only: a connection serves one request at a time.

The connections are our own (``_wire.WireConnection``), and the pool takes httpx's ``Request`` and
hands back httpx's ``Response`` itself: httpx's ``HTTPTransport`` (its translation to and from
httpcore's models and its exception mapping), httpcore's ``HTTP11Connection`` and h11 were together
~60% of the GIL-held time of a sync's requests.
"""

from __future__ import annotations

import collections
import ssl
import threading
import time
import typing
from collections.abc import Iterator
from types import TracebackType

import httpx

from ._wire import WireConnection, framing

_Key = tuple[str, str, int]
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_TLS_SCHEMES = ("https", "wss")
#: httpx's defaults (``httpx.HTTPTransport``'s ``limits``)
_DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)
_NO_TIMEOUTS: dict[str, float | None] = {}


class LeanPool:
    """Direct (unproxied) HTTP/1.1 connections, taken and given back per origin."""

    def __init__(self, ssl_context: ssl.SSLContext | None, *, max_connections: int | None = 100,
                 max_keepalive_connections: int | None = 20, keepalive_expiry: float | None = 5.0) -> None:
        if ssl_context is not None:
            ssl_context.set_alpn_protocols(["http/1.1"])  # as httpcore did on each connection
        self._ssl_context = ssl_context
        self._max_connections = max_connections if max_connections is not None else 2 ** 31
        idle = max_keepalive_connections if max_keepalive_connections is not None else self._max_connections
        self._max_idle = min(idle, self._max_connections)
        self._keepalive_expiry = keepalive_expiry
        self._lock = threading.Lock()
        self._freed = threading.Condition(self._lock)
        self._waiting = 0  # requests waiting for a connection to be freed (all are open and busy)
        #: per origin, its idle connections and when each was put back, the most recent last
        self._idle: dict[_Key, collections.deque[tuple[WireConnection, float]]] = {}
        self._idle_count = 0
        #: every connection opened and not yet closed, idle or busy: ``close()`` closes them all
        self._open: set[WireConnection] = set()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        scheme = url.scheme
        port = url.port or _DEFAULT_PORTS.get(scheme)
        if port is None or scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(
                "Request URL is missing an 'http://' or 'https://' protocol." if not scheme
                else f"Request URL has an unsupported protocol '{scheme}://'.")
        key = (scheme, url.host, port)
        timeouts = request.extensions.get("timeout", _NO_TIMEOUTS)
        connection = self._acquire(key, url, timeouts.get("pool"))
        method = request.method.encode("ascii")
        try:
            if connection.idle:
                connection.idle = False
            else:
                connection.connect(timeouts.get("connect"), request.extensions.get("sni_hostname"))
            headers = request.headers.raw
            # A sync client's request always has a sync stream (httpx.Client sees to it).
            body = typing.cast(httpx.SyncByteStream, request.stream)
            sent = connection.send_request(method, url.raw_path, headers, body, timeouts.get("write"))
            read_timeout = timeouts.get("read")
            version, status, reason, answer = connection.receive_head(read_timeout)
            length, chunked, keep_alive = framing(status, method, version, answer)
            if keep_alive:  # ... unless our request was cut short, or asked the server to close it
                keep_alive = sent and not any(n.lower() == b"connection" and b"close" in v.lower()
                                              for n, v in headers)
        except BaseException:
            self._discard(connection)
            raise
        stream = _Body(self, key, connection, connection.body(length, chunked, read_timeout), keep_alive)
        return httpx.Response(status, headers=answer, stream=stream,
                              extensions={"http_version": version, "reason_phrase": reason})

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

    def _acquire(self, key: _Key, url: httpx.URL, pool_timeout: float | None) -> WireConnection:
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
                    connection = WireConnection(url.raw_host.decode("ascii"), key[2],
                                                self._ssl_context if key[0] in _TLS_SCHEMES else None)
                    self._open.add(connection)
            if evicted is not None:
                evicted.close()
            if connection.idle and connection.has_expired(self._keepalive_expiry):
                # The one check, of the one connection about to be reused: its keep-alive ran out,
                # or its socket is readable while idle, i.e. the server closed it.
                self._discard(connection)
                continue
            return connection

    def _evict_idle(self) -> WireConnection | None:
        """Under the lock: take the longest-idle connection of any origin out of the pool."""
        oldest: collections.deque[tuple[WireConnection, float]] | None = None
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
            raise httpx.PoolTimeout("Timed out waiting for a connection from the pool.")
        self._waiting += 1
        try:
            self._freed.wait(remaining)
        finally:
            self._waiting -= 1

    def _release(self, key: _Key, connection: WireConnection) -> None:
        """A response was closed: keep its connection for the next request if it is idle (the
        answer read to its end, keep-alive on both sides), else close it."""
        if connection.idle:
            now = time.monotonic()
            connection.idle_since = now
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

    def _discard(self, connection: WireConnection) -> None:
        """Close a connection that will not be reused, and free its place."""
        with self._lock:
            self._open.discard(connection)
            if self._waiting:
                self._freed.notify()
        connection.close()


class _Body(httpx.SyncByteStream):
    """An answer's body as its connection reads it; closing it gives the connection back, idle if
    the body was read to its end on a connection both sides keep alive, else to be closed."""

    __slots__ = ("_chunks", "_connection", "_keep_alive", "_key", "_pool")

    def __init__(self, pool: LeanPool, key: _Key, connection: WireConnection, chunks: Iterator[bytes],
                 keep_alive: bool) -> None:
        self._pool: LeanPool | None = pool
        self._key = key
        self._connection = connection
        self._chunks = chunks
        self._keep_alive = keep_alive

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._chunks
        except BaseException:
            self.close()
            raise
        if self._keep_alive and self._pool is not None and not self._connection._buffer:
            # Read to its end with nothing left over (bytes past the answer would be read as the
            # next one's): the connection may carry another request.
            self._connection.idle = True

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool._release(self._key, self._connection)


class LeanTransport(httpx.BaseTransport):
    """httpx's transport interface over a ``LeanPool``: direct connections only (the transports
    httpx mounts for proxies stay httpx's own)."""

    def __init__(self, ssl_context: ssl.SSLContext, limits: httpx.Limits | None = None) -> None:
        limits = limits if limits is not None else _DEFAULT_LIMITS
        self._pool = LeanPool(
            ssl_context, max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections, keepalive_expiry=limits.keepalive_expiry)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._pool.handle_request(request)

    def close(self) -> None:
        self._pool.close()
