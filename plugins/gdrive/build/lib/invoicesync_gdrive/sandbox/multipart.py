"""A streaming parser for ``multipart/related`` upload bodies (metadata part, then media part).

Line endings may be CRLF (RFC 2046, what invoicesync sends) or bare LF (what
google-api-python-client sends), and the boundary may be quoted in the header. The media part is
written to a sink chunk by chunk, so a large body never sits in memory.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

_METADATA_LIMIT = 1024 * 1024


class MultipartError(ValueError):
    pass


def boundary_of(content_type: str) -> str:
    if not content_type.lower().startswith("multipart/related"):
        raise MultipartError(f"expected multipart/related, got {content_type!r}")
    match = re.search(r'boundary=(?:"([^"]+)"|([^;\s]+))', content_type, re.IGNORECASE)
    if not match:
        raise MultipartError("multipart/related without a boundary")
    return match.group(1) or match.group(2)


class _Stream:
    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self.buf = b"\n"  # lets the opening delimiter match like every later one

    def _fill(self) -> bool:
        for chunk in self._chunks:
            if chunk:
                self.buf += chunk
                return True
        return False

    def read_until(self, marker: bytes, emit: Callable[[bytes], None], *, crlf: bool) -> None:
        """Pass everything before ``marker`` to ``emit`` and consume the marker.

        One byte more than the marker is held back, so a CR right before it is still here to be
        dropped when the part uses CRLF line endings.
        """
        while True:
            index = self.buf.find(marker)
            if index >= 0:
                data = self.buf[:index]
                self.buf = self.buf[index + len(marker):]
                emit(data[:-1] if crlf and data.endswith(b"\r") else data)
                return
            hold = len(marker)
            if len(self.buf) > hold:
                emit(self.buf[:-hold])
                self.buf = self.buf[-hold:]
            if not self._fill():
                raise MultipartError("the body ends before the closing boundary")

    def line(self) -> bytes:
        parts: list[bytes] = []
        self.read_until(b"\n", parts.append, crlf=False)
        line = b"".join(parts)
        if len(line) > 8192:
            raise MultipartError("header line too long")
        return line.rstrip(b"\r")

    def peek(self, size: int) -> bytes:
        while len(self.buf) < size and self._fill():
            pass
        return self.buf[:size]


def parse_related(chunks: Iterable[bytes], content_type: str,
                  write_media: Callable[[bytes], None]) -> tuple[dict[str, Any], str]:
    """Parse the body; return ``(metadata, media content type)``; media bytes go to ``write_media``."""
    marker = b"\n--" + boundary_of(content_type).encode()
    stream = _Stream(chunks)
    stream.read_until(marker, lambda _preamble: None, crlf=False)
    crlf = stream.peek(2) == b"\r\n"
    stream.line()  # the rest of the delimiter line
    parts: list[tuple[dict[str, str], bytes | None]] = []
    while True:
        headers = _headers(stream)
        if not parts:
            collected = bytearray()
            stream.read_until(marker, functools.partial(_keep, collected), crlf=crlf)
            parts.append((headers, bytes(collected)))
        elif len(parts) == 1:
            stream.read_until(marker, write_media, crlf=crlf)
            parts.append((headers, None))
        else:
            raise MultipartError("an upload takes exactly two parts: metadata and media")
        if stream.peek(2) == b"--":
            break
        stream.line()
    if len(parts) != 2:
        raise MultipartError("an upload takes exactly two parts: metadata and media")
    meta_headers, meta_body = parts[0]
    if "json" not in meta_headers.get("content-type", "application/json"):
        raise MultipartError("the first part must be the JSON metadata")
    try:
        metadata = json.loads(meta_body or b"{}")
    except ValueError as exc:
        raise MultipartError(f"the metadata part is not JSON: {exc}") from None
    if not isinstance(metadata, dict):
        raise MultipartError("the metadata part must be a JSON object")
    return metadata, parts[1][0].get("content-type", "application/octet-stream")


def _keep(collected: bytearray, data: bytes) -> None:
    collected += data
    if len(collected) > _METADATA_LIMIT:
        raise MultipartError("the metadata part is too large")


def _headers(stream: _Stream) -> dict[str, str]:
    headers: dict[str, str] = {}
    while line := stream.line():
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return headers
