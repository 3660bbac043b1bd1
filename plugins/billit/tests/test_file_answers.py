"""A small file answer is read whole and decoded with the C ``json`` and ``binascii``; a large one
(or one of unknown length that turns out large) streams through the scanner. Either way the file,
its members and every error are the scanner's."""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from invoicesync.state import FolderBlobStore
from invoicesync_billit import documents
from invoicesync_billit.filejson import WHOLE_ANSWER_MAX, FileFormatError, FileJsonScanner, decode_whole

FILE_ID = "7f1a355e-526e-4523-b3df-44a47467537a"


def scanned(body: bytes) -> Any:
    """What the streaming scanner makes of ``body``: the file and members, or the error."""
    scanner = FileJsonScanner()
    try:
        data = b"".join(scanner.decode([body]))
    except FileFormatError as exc:
        return ("error", str(exc), exc.field)
    except (ValueError, RecursionError) as exc:
        return ("error", type(exc).__name__)
    return ("file", data, scanner.fields) if scanner.content_found else ("no content", scanner.fields)


def answer(content: Any = "", **extra: Any) -> bytes:
    return json.dumps({"FileID": FILE_ID, "FileName": "x.pdf", "MimeType": "application/pdf",
                       "FileContent": content, **extra}).encode()


PDF = base64.b64encode(b"%PDF-1.4 " + bytes(range(256)) * 3).decode()
#: Plain answers: read whole.
PLAIN = [
    answer(PDF),
    answer(""),
    answer(PDF, Extra={"nested": [1, {"FileContent": "}"}]}, Amount=12.5),
    answer(PDF).replace(b"/", b"\\/"),  # a serializer escaping the slash
    b' \r\n{"FileContent":"' + PDF.encode() + b'"} \n',
    answer(PDF, FileName="\u00e9t\u00e9 \\ \"x\".pdf"),
    answer(PDF).replace(b'"FileContent"', b'"File\\u0043ontent"'),
    answer(PDF).replace(b"A", b"\\u0041"),
]
#: Answers the whole-answer reader leaves to the scanner (some fine, most broken).
NOT_PLAIN = [
    answer(PDF[:76] + "\n" + PDF[76:]),  # base64 wrapped with escaped line breaks: fine
    answer(PDF.rstrip("=") + ("" if len(PDF.rstrip("=")) % 4 else "QQ")),  # padding left out: fine
    answer("QQ==QQ=="), answer("QUJD===="), answer("QUJD="),  # padding in the middle, or too much
    answer("QUJ$"), answer("%%% not base64 %%%"), answer("QUJDR"), answer("\u00e9"),
    answer(None), answer(12), answer(["QUJD"]),
    json.dumps({"FileID": FILE_ID, "FileName": "x.pdf"}).encode(),  # no FileContent
    b'{"FileContent": "QUJD", "FileContent": "REVG"}',  # twice
    b'{"FileName": "a.pdf", "FileContent": "QUJD", "FileName": "b.pdf"}',
    b'{"FileContent": null, "FileContent": "QUJD"}',
    b'\xef\xbb\xbf{"FileContent": "QUJD"}',  # a byte-order mark
    '{"FileContent": "QUJD"}'.encode("utf-16"),
    b'{"FileName": "\xff.pdf", "FileContent": "QUJD"}',  # not UTF-8
    b'{"FileContent": "QUJD"} x', b'{"FileContent": "QUJD"', b'{"FileContent": "QUJD",}', b"[]", b"", b"null",
    b'{"' + b"K" * 1100 + b'": 1, "FileContent": "QUJD"}',  # a member name over the scanner's limit
    b'{"FileName": ' + b"[" * 100_000 + b"]" * 100_000 + b', "FileContent": "QUJD"}',
    b'{"FileContent": "QUJD\\"x"}', b'{"FileContent": "QU\\u00e9JD"}',
]


@pytest.mark.parametrize("body", PLAIN, ids=range(len(PLAIN)))
def test_a_plain_answer_is_decoded_whole_exactly_as_the_scanner_decodes_it(body: bytes) -> None:
    plain = decode_whole(body)
    assert plain is not None
    assert ("file", *plain) == scanned(body)


@pytest.mark.parametrize("body", NOT_PLAIN, ids=range(len(NOT_PLAIN)))
def test_any_other_answer_is_left_to_the_scanner(body: bytes) -> None:
    assert decode_whole(body) is None


def test_random_answers_read_whole_agree_with_the_scanner() -> None:
    rng = random.Random(11)
    alphabet = b'{}[]",:\\/ \nAQ=+0u-e.1FileContentName'
    taken = 0
    for trial in range(3000):
        base = bytearray(answer(base64.b64encode(rng.randbytes(rng.randrange(0, 30))).decode(),
                                Extra={"n": [1, "x"]}))
        for _ in range(trial % 3):  # 0, 1 or 2 random edits: many stay plain, many break
            at = rng.randrange(len(base))
            base[at:at + rng.randrange(0, 3)] = bytes(rng.choices(alphabet, k=rng.randrange(0, 3)))
        body = bytes(base)
        plain = decode_whole(body)
        if plain is not None:
            taken += 1
            assert ("file", *plain) == scanned(body), body
    assert taken > 1000


# -- fetch_body: read whole, or streamed -------------------------------------------------------


class Chunks(httpx.SyncByteStream):
    """A response body in pieces, counting what was read of it."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces
        self.read = 0

    def __iter__(self) -> Iterator[bytes]:
        for piece in self.pieces:
            self.read += len(piece)
            yield piece


class OneAnswer:
    """A ``BillitClient`` stand-in whose ``stream`` gives one prepared answer."""

    def __init__(self, body: bytes, *, chunk: int = 64 * 1024, length: bool = True) -> None:
        self.stream_body = Chunks([body[i:i + chunk] for i in range(0, len(body), chunk)])
        self.headers = {"Content-Type": "application/json; charset=utf-8"}
        if length:
            self.headers["Content-Length"] = str(len(body))

    @contextmanager
    def stream(self, url: str, *, party_id: str | None = None) -> Iterator[httpx.Response]:
        yield httpx.Response(200, headers=self.headers, stream=self.stream_body,
                             request=httpx.Request("GET", "https://api.billit.test" + url))


class CountingScanner(FileJsonScanner):
    made = 0

    def __init__(self) -> None:
        super().__init__()
        CountingScanner.made += 1


@pytest.fixture
def scanners(monkeypatch: pytest.MonkeyPatch) -> type[CountingScanner]:
    CountingScanner.made = 0
    monkeypatch.setattr(documents, "FileJsonScanner", CountingScanner)
    return CountingScanner


def fetch(tmp_path: Path, client: OneAnswer) -> tuple[documents.Body, bytes]:
    blobs = FolderBlobStore(tmp_path / "blobs")
    body = documents.fetch_body(client, "1", FILE_ID, blobs)  # type: ignore[arg-type]
    return body, blobs.path(body.sha).read_bytes()


@pytest.mark.parametrize("length", [True, False], ids=["content-length", "chunked"])
def test_a_small_answer_is_read_whole_without_the_scanner(tmp_path: Path, scanners: Any, length: bool) -> None:
    data = random.Random(1).randbytes(40_000)
    client = OneAnswer(answer(base64.b64encode(data).decode()), chunk=16 * 1024, length=length)
    body, stored = fetch(tmp_path, client)
    assert stored == data and body.size == len(data) and body.content_found
    assert body.fields == {"FileID": FILE_ID, "FileName": "x.pdf", "MimeType": "application/pdf"}
    assert scanners.made == 0


@pytest.mark.parametrize("length", [True, False], ids=["content-length", "chunked"])
def test_a_large_answer_streams_through_the_scanner(tmp_path: Path, scanners: Any, length: bool) -> None:
    data = random.Random(2).randbytes(WHOLE_ANSWER_MAX)  # its base64 is over the bound
    client = OneAnswer(answer(base64.b64encode(data).decode()), chunk=16 * 1024, length=length)
    body, stored = fetch(tmp_path, client)
    assert stored == data and body.fields["FileName"] == "x.pdf"
    assert scanners.made == 1


def test_a_content_length_over_the_bound_streams_from_the_first_byte() -> None:
    stream = Chunks([b"x" * 1000] * 300)
    response = httpx.Response(200, headers={"Content-Length": str(WHOLE_ANSWER_MAX + 1)})
    whole, chunks = documents.read_whole(response, iter(stream), WHOLE_ANSWER_MAX)
    assert whole is None and stream.read == 0  # nothing read ahead to find the size
    assert b"".join(chunks) == b"".join(stream.pieces)


def test_a_chunked_answer_is_held_up_to_the_bound_only() -> None:
    stream = Chunks([bytes([i % 256]) * 1000 for i in range(300)])
    whole, chunks = documents.read_whole(httpx.Response(200), iter(stream), 100_000)
    assert whole is None and stream.read == 101_000  # the bound, and the one piece that passed it
    assert b"".join(chunks) == b"".join(stream.pieces)  # held first, then the rest as it comes


@pytest.mark.parametrize("body", [answer("%%% not base64 %%%"), answer(None), b'{"FileContent": "QUJD"} x'])
def test_a_small_broken_answer_fails_as_the_scanner_says(tmp_path: Path, body: bytes) -> None:
    with pytest.raises(FileFormatError) as info:
        fetch(tmp_path, OneAnswer(body))
    assert ("error", str(info.value), info.value.field) == scanned(body)
