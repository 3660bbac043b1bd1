"""HTTP/1.1 on one socket, for ``LeanPool``: what httpcore's ``HTTP11Connection`` and h11 did for us,
in plain bytes operations.

h11 is a general state machine (events, per-event validation, a state table run on every event):
for a client that sends one request and reads one answer at a time that was ~40% of the GIL-held
time per request. Here a request's head is one ``b"".join`` and goes out in one ``send`` together
with a small body; an answer's head is found with one search and split into lines; a body comes by
``Content-Length``, chunked, or until the server closes, streamed as it arrives.

Errors are httpx's own classes, as httpx's transport mapped httpcore's: the retry layer
(``_client.py``) tells a request that never left (``ConnectError``/``ConnectTimeout``) from one
whose answer was lost (``ReadTimeout``, ``WriteTimeout``, ``ReadError``, ``RemoteProtocolError``).
"""

from __future__ import annotations

import re
import select
import socket
import ssl
import time
from collections.abc import Iterable, Iterator

import httpx

_READ_SIZE = 64 * 1024  # per recv, as httpcore
_MAX_HEAD = 100 * 1024  # an answer's head larger than this is refused, as h11 does
_SMALL = 64 * 1024  # body chunks up to this go out joined with what precedes them (one send)
_HEAD_END = re.compile(rb"\r?\n\r?\n")  # h11 accepts bare LF line ends too
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
_CHUNK_LINE_END = re.compile(rb"\r?\n")
#: one header line: a name (no white space, no colon), its value without the white space around it
_HEADER_LINE = re.compile(rb"^([^\s:]+):[ \t]*([^\r\n]*)\r?\n", re.MULTILINE)
#: header names already checked to be tokens (a handful in practice; bounded anyway)
_good_names: set[bytes] = set()
_NO_BODY_STATUSES = frozenset((204, 304))

Headers = list[tuple[bytes, bytes]]


class WireConnection:
    """One HTTP/1.1 connection: opened on its first request, then one request at a time.

    ``idle`` is true between answers read to their end on a connection both sides keep alive; the
    pool reuses only idle connections and closes every other one."""

    __slots__ = ("_buffer", "_poll", "_sock", "_timeout", "closed", "host", "idle", "idle_since", "port",
                 "ssl_context")

    def __init__(self, host: str, port: int, ssl_context: ssl.SSLContext | None) -> None:
        self.host = host
        self.port = port
        self.ssl_context = ssl_context  # None: plain TCP
        self._sock: socket.socket | None = None
        self._poll: select.poll | None = None
        self._timeout: float | None = None
        self._buffer = b""  # received, not yet handed on
        self.idle = False
        self.idle_since = 0.0
        self.closed = False

    # -- the pool's questions ----------------------------------------------------------------------

    def has_expired(self, keepalive_expiry: float | None) -> bool:
        """An idle connection about to be reused: its keep-alive ran out, or its socket is readable,
        which while idle only means the server closed it (httpcore's one check, the same way)."""
        if keepalive_expiry is not None and time.monotonic() - self.idle_since > keepalive_expiry:
            return True
        return self._poll is None or bool(self._poll.poll(0))

    def close(self) -> None:
        self.idle = False
        self.closed = True
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    # -- one request -------------------------------------------------------------------------------

    def connect(self, timeout: float | None, sni_hostname: str | None) -> None:
        """TCP (with ``TCP_NODELAY``), then TLS through the shared context: SNI and the hostname
        check as httpcore does them (``server_hostname``)."""
        sock = None
        try:
            sock = socket.create_connection((self.host, self.port), timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ssl_context is not None:
                sock = self.ssl_context.wrap_socket(sock, server_hostname=sni_hostname or self.host)
        except OSError as exc:
            if sock is not None:
                sock.close()
            raise (httpx.ConnectTimeout if isinstance(exc, TimeoutError) else httpx.ConnectError)(str(exc)) from exc
        self._sock = sock
        self._timeout = timeout
        self._poll = select.poll()
        self._poll.register(sock.fileno(), select.POLLIN)

    def send_request(self, method: bytes, target: bytes, headers: Headers, body: Iterable[bytes],
                     write_timeout: float | None) -> bool:
        """The head and a small body in one ``send``; a larger body streamed chunk by chunk. A write
        that fails (not a timeout) is let go, as httpcore does: a server may answer (say 413) and
        close before reading it all, and the answer, read next, tells what happened. ``False`` then:
        the connection, its request cut short, must not carry another one."""
        length: int | None = None
        chunked = False
        for name, value in headers:
            lowered = name.lower()
            if lowered == b"content-length":
                if not value.isdigit():
                    raise httpx.LocalProtocolError("Content-Length must be a number")
                length = int(value)
            elif lowered == b"transfer-encoding":
                chunked = value.strip().lower() == b"chunked"
                if not chunked:
                    raise httpx.LocalProtocolError("Only Transfer-Encoding: chunked is supported")
        head = b"".join([method, b" ", target, b" HTTP/1.1\r\n",
                         *[b"%s: %s\r\n" % pair for pair in headers], b"\r\n"])
        _check_head(head, method, headers)
        try:
            self._send_body(head, body, None if chunked else length or 0, chunked, write_timeout)
        except TimeoutError as exc:
            raise httpx.WriteTimeout(str(exc) or "timed out") from exc
        except OSError:
            return False  # see above
        return True

    def _send_body(self, pending: bytes, body: Iterable[bytes], length: int | None, chunked: bool,
                   timeout: float | None) -> None:
        sock = self._socket(timeout)
        sent = 0
        for chunk in body:
            if not chunk:
                continue
            sent += len(chunk)
            if length is not None and sent > length:
                raise httpx.LocalProtocolError("Too much data for declared Content-Length")
            if chunked:
                frame = b"%x\r\n" % len(chunk)
                if len(chunk) <= _SMALL:
                    chunk = frame + chunk + b"\r\n"
                else:
                    pending += frame
                    sock.sendall(pending)
                    sock.sendall(chunk)  # a large chunk is sent as given: never copied
                    pending = b"\r\n"
                    continue
            if len(pending) + len(chunk) <= _SMALL:
                pending += chunk
            else:
                if pending:
                    sock.sendall(pending)
                sock.sendall(chunk)
                pending = b""
        if length is not None and sent < length:
            raise httpx.LocalProtocolError("Too little data for declared Content-Length")
        if chunked:
            pending += b"0\r\n\r\n"
        if pending:
            sock.sendall(pending)

    def receive_head(self, read_timeout: float | None) -> tuple[bytes, int, bytes, Headers]:
        """The answer's HTTP version, status, reason and headers; interim (1xx) answers skipped."""
        while True:
            version, status, reason, headers = self._read_head(read_timeout)
            if status >= 200 or status == 101:
                return version, status, reason, headers

    def _read_head(self, read_timeout: float | None) -> tuple[bytes, int, bytes, Headers]:
        buffer = self._buffer
        end = _head_end(buffer, 0)
        while end is None:
            if len(buffer) > _MAX_HEAD:
                raise httpx.RemoteProtocolError("The server's answer head is too large")
            data = self._recv(read_timeout)
            if not data:
                raise httpx.RemoteProtocolError("Server disconnected without sending a response." if not buffer
                                                else "The server closed the connection in the middle of the head")
            # Search from just before the new data: the blank line may straddle two reads.
            start = max(len(buffer) - 3, 0)
            buffer += data
            end = _head_end(buffer, start)
        self._buffer = buffer[end[1]:]
        return _parse_head(buffer[:end[0]])

    def body(self, length: int | None, chunked: bool, read_timeout: float | None) -> Iterator[bytes]:
        """The answer's body: ``length`` bytes, chunked, or (both unset) until the server closes."""
        if chunked:
            yield from self._chunked(read_timeout)
            return
        buffer, self._buffer = self._buffer, b""
        if length is None:  # until close: the connection ends with the answer
            if buffer:
                yield buffer
            while data := self._recv(read_timeout):
                yield data
            return
        if len(buffer) >= length:
            self._buffer = buffer[length:]
            if length:
                yield buffer[:length]
            return
        remaining = length - len(buffer)
        if buffer:
            yield buffer
        while remaining:
            data = self._recv(read_timeout)
            if not data:
                raise httpx.RemoteProtocolError(
                    f"peer closed connection without sending complete message body: "
                    f"received {length - remaining} bytes, expected {length}")
            if len(data) > remaining:
                self._buffer = data[remaining:]
                data = data[:remaining]
            remaining -= len(data)
            yield data

    def _chunked(self, read_timeout: float | None) -> Iterator[bytes]:
        while True:
            size_line = self._line(read_timeout)
            size_text = size_line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                size = -1
            if size < 0 or not size_text or len(size_text) > 16:
                raise httpx.RemoteProtocolError(f"Bad chunk size line {size_line[:40]!r}")
            if size == 0:
                while self._line(read_timeout):  # trailers, up to the blank line
                    pass
                return
            while size:
                if not self._buffer:
                    self._buffer = self._recv_some(read_timeout)
                data = self._buffer[:size]
                self._buffer = self._buffer[size:]
                size -= len(data)
                yield data
            if self._line(read_timeout):
                raise httpx.RemoteProtocolError("A chunk is longer than its size line says")

    def _line(self, read_timeout: float | None) -> bytes:
        """One line of a chunked body's framing, without its line end."""
        while True:
            end = _CHUNK_LINE_END.search(self._buffer)
            if end is not None:
                line = self._buffer[:end.start()]
                self._buffer = self._buffer[end.end():]
                return line
            if len(self._buffer) > _MAX_HEAD:
                raise httpx.RemoteProtocolError("A chunked body's framing line is too long")
            self._buffer += self._recv_some(read_timeout)

    def _recv_some(self, read_timeout: float | None) -> bytes:
        data = self._recv(read_timeout)
        if not data:
            raise httpx.RemoteProtocolError("peer closed connection without sending complete message body: "
                                            "incomplete chunked read")
        return data

    def _recv(self, timeout: float | None) -> bytes:
        try:
            return self._socket(timeout).recv(_READ_SIZE)
        except TimeoutError as exc:
            raise httpx.ReadTimeout(str(exc) or "timed out") from exc
        except OSError as exc:
            raise httpx.ReadError(str(exc)) from exc

    def _socket(self, timeout: float | None) -> socket.socket:
        """The socket, with ``timeout`` set (only when it changes: each ``settimeout`` is a syscall)."""
        sock = self._sock
        if sock is None:
            raise OSError("the connection is closed")
        if timeout != self._timeout:
            sock.settimeout(timeout)
            self._timeout = timeout
        return sock


def _head_end(buffer: bytes, start: int) -> tuple[int, int] | None:
    """Where the head ends and the body starts, if the blank line has come: ``find`` for the usual
    CRLF CRLF (a regular expression costs ~7 us on a 1 kB answer), else h11's bare-LF forms too."""
    end = buffer.find(b"\r\n\r\n", start)
    if end >= 0 and buffer.find(b"\n\n", start, end) < 0:
        return end, end + 4
    found = _HEAD_END.search(buffer, start)
    return None if found is None else (found.start(), found.end())


def _check_head(head: bytes, method: bytes, headers: Headers) -> None:
    """Refuse what h11 refused before sending: a line break or NUL inside the method, target or a
    header (it would forge a header or a request), and a header name that is not a token."""
    if head.count(b"\n") != len(headers) + 2 or head.count(b"\r") != len(headers) + 2 or b"\0" in head \
            or not _TOKEN.fullmatch(method):
        raise httpx.LocalProtocolError("Illegal character in the request method, target or a header")
    for name, _ in headers:
        if name not in _good_names:
            if not _TOKEN.fullmatch(name):
                raise httpx.LocalProtocolError(f"Illegal header name {name!r}")
            if len(_good_names) < 512:
                _good_names.add(name)


def _parse_head(head: bytes) -> tuple[bytes, int, bytes, Headers]:
    """The status line, then every header line in one regular expression pass (a Python loop over
    the lines cost ~20 us an answer); a head it does not match line for line (obsolete folding, or
    a malformed line) goes through the line-by-line parser, which says what is wrong."""
    first_end = head.find(b"\n")
    status_line, block = (head, b"") if first_end < 0 else (head[:first_end], head[first_end + 1:] + b"\n")
    status_line = status_line.rstrip(b"\r")
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or parts[0] not in (b"HTTP/1.1", b"HTTP/1.0") or len(parts[1]) != 3 \
            or not parts[1].isdigit():
        raise httpx.RemoteProtocolError(f"Malformed status line {status_line[:80]!r}")
    headers: Headers = _HEADER_LINE.findall(block)
    if len(headers) != block.count(b"\n") or b" \r\n" in block or b"\t\r\n" in block:  # (white space after a value)
        headers = _parse_lines(block.split(b"\n")[:-1])
    return parts[0], int(parts[1]), parts[2] if len(parts) > 2 else b"", headers


def _parse_lines(lines: list[bytes]) -> Headers:
    headers: Headers = []
    for line in lines:
        line = line.rstrip(b"\r")
        if line[:1] in (b" ", b"\t"):  # obsolete line folding: part of the previous value
            if not headers:
                raise httpx.RemoteProtocolError("Malformed header line")
            name, value = headers[-1]
            headers[-1] = (name, value + b" " + line.strip(b" \t"))
            continue
        name, colon, value = line.partition(b":")
        if not colon or not name or name[-1:] in (b" ", b"\t") or b"\r" in value:
            raise httpx.RemoteProtocolError(f"Malformed header line {line[:80]!r}")
        headers.append((name, value.strip(b" \t")))
    return headers


def framing(status: int, method: bytes, version: bytes, headers: Headers) -> tuple[int | None, bool, bool]:
    """How the answer's body ends (RFC 9112 6.3): its length (``None``: chunked or until close),
    whether it is chunked, and whether the connection may carry another request after it."""
    length: int | None = None
    transfer_encoding = False
    keep_alive = version == b"HTTP/1.1"  # h11 keeps no HTTP/1.0 connection alive
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"content-length":
            values = {v.strip() for v in value.split(b",")}
            if len(values) != 1 or not (number := values.pop()).isdigit() or \
                    (length is not None and int(number) != length):
                raise httpx.RemoteProtocolError("Bad Content-Length")
            length = int(number)
        elif lowered == b"transfer-encoding":
            if value.strip().lower() != b"chunked":
                raise httpx.RemoteProtocolError("Unsupported Transfer-Encoding")
            transfer_encoding = True
        elif lowered == b"connection" and b"close" in value.lower():
            keep_alive = False
    if method == b"HEAD" or status < 200 or status in _NO_BODY_STATUSES:
        return 0, False, keep_alive and status != 101
    if transfer_encoding:
        return None, True, keep_alive
    if length is None:
        return None, False, False  # until close
    return length, False, keep_alive
