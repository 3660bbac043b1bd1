"""Stream-decode Billit's file answer: ``{"FileID", "FileName", "MimeType", "FileContent": "<base64>"}``.

``GET /v1/files/{id}`` returns a file as JSON with the bytes base64-encoded inside one string.
Parsing that with ``json.loads`` would hold the whole file three times over (body, string,
bytes). This scanner reads the object incrementally: small members are collected and parsed,
and the ``FileContent`` string is base64-decoded in 4-character-aligned pieces as it arrives,
so memory stays one network chunk whatever the file size.

Most answers are small (an invoice PDF of a few dozen KiB), and for those the scanner's pure-Python
loop costs more than the bytes: ``decode_whole`` reads an answer of at most ``WHOLE_ANSWER_MAX``
bytes with the C ``json`` and ``binascii`` instead, in the plain case only; anything else it hands
back to the scanner, which then reads the same bytes, so results and errors stay the scanner's.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

CONTENT_KEY = "FileContent"
_WS = b" \t\r\n"
_B64 = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
#: JSON escapes that may legally appear inside a base64 string (line breaks of wrapped base64).
_IGNORED_ESCAPES = {ord("n"), ord("r"), ord("t"), ord("b"), ord("f")}
_MAX_SMALL_VALUE = 1 << 20
#: The longest file answer read whole (``decode_whole``) rather than scanned as it streams. Below it
#: the C path saves the scanner's fixed ~0.1 ms per answer (a 2 KiB answer: ~140 us scanned, ~15 us
#: whole); from ~70 KiB up C ``json`` walking the long base64 string costs more than the scanner's
#: ``bytes.find``, so streaming is the faster path as well as the lean one. 64 KiB of JSON is a
#: file of up to 48 KiB (a UBL, a simple invoice PDF); held whole it costs at most ~0.25 MiB at once
#: per download (the body, its text, the base64 string and the bytes). Far below
#: ``_MAX_SMALL_VALUE``: no member of an answer read whole is one the scanner would refuse as too large.
WHOLE_ANSWER_MAX = 64 * 1024
#: Member names longer than this go to the scanner (which refuses names over 1024 bytes as sent).
_MAX_PLAIN_KEY = 64


class FileFormatError(ValueError):
    """The answer is not the documented file object; ``field`` names the culprit."""

    def __init__(self, message: str, field: str = CONTENT_KEY) -> None:
        super().__init__(message)
        self.field = field


class _NotPlain(ValueError):
    """A duplicated member: only the scanner knows what to make of it."""


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    if len(members) != len(pairs):
        raise _NotPlain
    return members


def decode_whole(body: bytes) -> tuple[bytes, dict[str, Any]] | None:
    """``(file bytes, the other members)`` of a whole file answer in the plain case: one JSON object
    in UTF-8, each member once, ``FileContent`` a string of strict base64, padded at its end only. ``None``
    otherwise (base64 wrapped with escaped line breaks, missing padding, a malformed answer): then
    ``FileJsonScanner`` reads ``body``, and gives the file or the same error as for any answer."""
    if body.lstrip(_WS)[:1] != b"{":
        return None
    try:
        members = json.loads(body.decode(), parse_float=Decimal, object_pairs_hook=_unique_members)
        content = members.pop(CONTENT_KEY, None)
        if not isinstance(content, str) or any(len(key) > _MAX_PLAIN_KEY for key in members):
            return None
        if len(content) % 4 or "=" in content[:-2]:  # padding anywhere but the end: the scanner's call
            return None
        return binascii.a2b_base64(content, strict_mode=True), members
    except (ValueError, RecursionError):  # binascii.Error and UnicodeDecodeError are ValueErrors
        return None


class Base64Stream:
    """Decode base64 that arrives in arbitrary pieces, strictly, 4 characters at a time."""

    def __init__(self) -> None:
        self._pending = b""
        self.total = 0

    def feed(self, data: bytes) -> bytes:
        if not data:
            return b""
        data = self._pending + data
        usable = len(data) - len(data) % 4
        self._pending = data[usable:]
        return self._decode(data[:usable])

    def finish(self) -> bytes:
        rest, self._pending = self._pending, b""
        if not rest:
            return b""
        if len(rest) == 1:
            raise FileFormatError("base64 content is truncated (a lone trailing character)")
        return self._decode(rest + b"=" * (4 - len(rest)))  # tolerate missing padding

    def _decode(self, data: bytes) -> bytes:
        if not data:
            return b""
        try:
            out = binascii.a2b_base64(data, strict_mode=True)
        except binascii.Error as exc:
            raise FileFormatError(f"FileContent is not valid base64 ({exc})") from None
        self.total += len(out)
        return out


class FileJsonScanner:
    """Feed it the response chunks; it yields the decoded file bytes and fills ``fields``."""

    def __init__(self) -> None:
        self.fields: dict[str, Any] = {}
        self.content_found = False
        self._b64 = Base64Stream()
        self._state = "start"
        self._key = bytearray()
        self._raw = bytearray()
        self._in_string = False
        self._escaped = False
        self._depth = 0
        self._carry = b""

    def decode(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            out = self._feed(chunk)
            if out:
                yield out
        if self._state != "done":
            raise FileFormatError("the file answer ends in the middle of its JSON object")
        if self.fields.get(CONTENT_KEY, "") is None:
            raise FileFormatError("FileContent is null")

    # -- the state machine -------------------------------------------------------------------

    def _feed(self, chunk: bytes) -> bytes:
        data = self._carry + chunk
        self._carry = b""
        out = bytearray()
        i, n = 0, len(data)
        while i < n:
            state = self._state
            if state == "content":
                i = self._content(data, i, out)
                continue
            c = data[i]
            if state == "raw":
                i = self._raw_value(data, i)
                continue
            if state == "key":
                self._key_char(c)
            elif c in _WS:
                pass
            elif state == "start":
                self._expect(c, b"{", "key_or_end")
            elif state == "key_or_end":
                if c == ord("}"):
                    self._state = "done"
                else:
                    self._expect(c, b'"', "key")
            elif state == "after_comma":
                self._expect(c, b'"', "key")
            elif state == "colon":
                self._expect(c, b":", "value")
            elif state == "value":
                if self._key_text() == CONTENT_KEY and c == ord('"'):
                    self.content_found = True
                    self._state = "content"
                else:
                    self._state, self._raw, self._depth = "raw", bytearray(), 0
                    self._in_string = self._escaped = False
                    continue  # the raw-value scanner takes this character
            elif state == "comma_or_end":
                if c == ord(","):
                    self._state = "after_comma"
                else:
                    self._expect(c, b"}", "done")
            else:  # done: only whitespace may follow
                raise FileFormatError("unexpected data after the file object")
            i += 1
        return bytes(out)

    def _expect(self, c: int, wanted: bytes, next_state: str) -> None:
        if c != wanted[0]:
            raise FileFormatError(f"the file answer is not a JSON object (unexpected {chr(c)!r})", field="FileID")
        if next_state == "key":
            self._key = bytearray()
            self._escaped = False
        self._state = next_state

    def _key_char(self, c: int) -> None:
        if self._escaped:
            self._escaped = False
        elif c == ord("\\"):
            self._escaped = True
        elif c == ord('"'):
            self._state = "colon"
            return
        self._key.append(c)
        if len(self._key) > 1024:
            raise FileFormatError("absurdly long member name in the file answer", field="FileID")

    def _key_text(self) -> str:
        return str(json.loads(b'"' + bytes(self._key) + b'"'))

    def _raw_value(self, data: bytes, i: int) -> int:
        """Collect one small member value (anything but FileContent) up to its ``,`` or ``}``."""
        n = len(data)
        while i < n:
            c = data[i]
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                elif c == ord("\\"):
                    self._escaped = True
                elif c == ord('"'):
                    self._in_string = False
            elif c == ord('"'):
                self._in_string = True
            elif c in b"[{":
                self._depth += 1
            elif c in b"]}" and self._depth > 0:
                self._depth -= 1
            elif c in b",}" and self._depth == 0:
                self._store_raw()
                self._state = "after_comma" if c == ord(",") else "done"
                return i + 1
            self._raw.append(c)
            if len(self._raw) > _MAX_SMALL_VALUE:
                raise FileFormatError(f"member {self._key_text()!r} of the file answer is too large",
                                      field=self._key_text())
            i += 1
        return i

    def _store_raw(self) -> None:
        key = self._key_text()
        try:
            self.fields[key] = json.loads(bytes(self._raw), parse_float=Decimal)
        except ValueError:
            raise FileFormatError(f"member {key!r} of the file answer is not valid JSON", field=key) from None
        if key == CONTENT_KEY and self.fields[key] is not None:
            raise FileFormatError("FileContent must be a base64 string")

    def _content(self, data: bytes, i: int, out: bytearray) -> int:
        """Inside the FileContent string: pass base64 through, resolve the few legal escapes."""
        n = len(data)
        quote = data.find(b'"', i)
        slash = data.find(b"\\", i)
        stops = [p for p in (quote, slash) if p >= 0]
        end = min(stops) if stops else n
        out += self._b64.feed(data[i:end])
        if end == n:
            return n
        if end == quote:
            out += self._b64.finish()
            self._state = "comma_or_end"
            return end + 1
        # an escape: need its next character (and 4 hex digits for \u)
        if end + 1 >= n:
            self._carry = data[end:]
            return n
        kind = data[end + 1]
        if kind == ord("/"):
            out += self._b64.feed(b"/")
            return end + 2
        if kind in _IGNORED_ESCAPES:
            return end + 2
        if kind == ord("u"):
            if end + 6 > n:
                self._carry = data[end:]
                return n
            try:
                char = int(data[end + 2:end + 6], 16)
            except ValueError:
                raise FileFormatError("FileContent holds a broken \\u escape") from None
            if char in _B64:
                out += self._b64.feed(bytes([char]))
            elif char not in _WS:
                raise FileFormatError("FileContent contains a character that is not base64")
            return end + 6
        raise FileFormatError("FileContent contains a character that is not base64")
