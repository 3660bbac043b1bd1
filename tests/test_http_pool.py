"""The pool under ``HttpClient`` sends straight to its transport (no auth flow, redirect loop, cookie
jar or event hooks: invoicesync uses none of them), and the answer is what ``httpx.Client.send``
would have handed back."""

from __future__ import annotations

import logging

import httpx
import pytest
from invoicesync import RemoteError
from invoicesync.http import HttpClient
from invoicesync.http._pool import new_pool


def _refuse_client_send(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> httpx.Response:
        raise AssertionError("httpx.Client.send was used")

    monkeypatch.setattr(httpx.Client, "send", refuse)


def test_a_request_goes_straight_to_the_transport_and_its_answer_is_complete(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    _refuse_client_send(monkeypatch)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True}, headers={"Set-Cookie": "session=1"})

    pool = new_pool("https://svc.test/api", transport=httpx.MockTransport(handler), headers={"Accept": "x/y"})
    http = HttpClient(pool=pool, service="svc")
    with caplog.at_level(logging.INFO, logger="httpx"):
        response = http.get("/orders/7", params={"a": "1"}, headers={"PartyID": "42"})
    assert response.json() == {"ok": True} and response.request is seen[0]
    assert str(seen[0].url) == "https://svc.test/api/orders/7?a=1"
    assert seen[0].headers["PartyID"] == "42" and seen[0].headers["Accept"] == "x/y"
    assert "invoicesync/" in seen[0].headers["User-Agent"] and "cookie" not in seen[0].headers
    assert 'HTTP Request: GET https://svc.test/api/orders/7?a=1 "HTTP/1.1 200 OK"' in caplog.text
    http.get("/again")
    assert "cookie" not in seen[1].headers  # no cookie jar: nothing is sent back


def test_a_streamed_answer_is_read_as_it_comes_and_errors_name_their_request(monkeypatch: pytest.MonkeyPatch) -> None:
    _refuse_client_send(monkeypatch)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/broken":
            raise httpx.ConnectError("refused")
        if request.url.path == "/missing":
            return httpx.Response(404, text="no such order")
        return httpx.Response(200, stream=httpx.ByteStream(b"x" * 10_000))

    http = HttpClient(pool=new_pool("https://svc.test", transport=httpx.MockTransport(handler)), max_attempts=1)
    with http.stream("GET", "/file") as response:
        assert b"".join(response.iter_bytes()) == b"x" * 10_000
    assert response.elapsed.total_seconds() >= 0  # set once the answer is closed, as httpx does
    with pytest.raises(RemoteError, match="no such order"):
        http.get("/missing")
    pool = new_pool("https://svc.test", transport=httpx.MockTransport(handler))
    with pytest.raises(httpx.ConnectError) as raised:
        from invoicesync.http._pool import send

        send(pool, pool.build_request("GET", "/broken"), stream=False)
    assert raised.value.request.url.path == "/broken"


def test_a_closed_pool_refuses_to_send() -> None:
    pool = new_pool("https://svc.test", transport=httpx.MockTransport(lambda request: httpx.Response(200)))
    http = HttpClient(pool=pool)
    pool.close()
    with pytest.raises(RuntimeError, match="closed"):
        http.get("/x")


def test_a_pool_that_is_not_ours_is_sent_through_httpx() -> None:
    sent: list[str] = []

    class Recording(httpx.Client):
        def send(self, request: httpx.Request, **kwargs: object) -> httpx.Response:  # type: ignore[override]
            sent.append(request.url.path)
            return super().send(request, **kwargs)  # type: ignore[arg-type]

    pool = Recording(base_url="https://svc.test", transport=httpx.MockTransport(lambda request: httpx.Response(204)))
    assert HttpClient(pool=pool).get("/x").status_code == 204 and sent == ["/x"]


@pytest.mark.parametrize("base", ["https://svc.test", "https://svc.test/api/v2", "http://127.0.0.1:8123/"])
@pytest.mark.parametrize(("method", "url", "kwargs"), [
    ("GET", "/orders/7", {}),
    ("GET", "/files/a b/ü?x=1&y=two words", {"headers": {"PartyID": "42"}}),
    ("POST", "/2/files/upload", {"content": b"%PDF", "headers": {"Dropbox-API-Arg": '{"path": "/\\u00e9"}'}}),
    ("POST", "/token", {"json": {"grant_type": "refresh_token"}, "timeout": 5.0}),
    ("GET", "/orders", {"params": {"$top": 120, "$skip": 0}}),  # left to httpx
    ("GET", "/x", {"headers": {"accept": "text/xml"}}),  # overrides a default: left to httpx
    ("GET", "https://other.test/abs", {}),  # absolute: left to httpx
    ("GET", "//other.test/x", {}),  # left to httpx
    ("GET", "/frag#ment", {}),  # left to httpx
])
def test_a_request_is_built_as_httpx_would_build_it(base: str, method: str, url: str,
                                                    kwargs: dict[str, object]) -> None:
    from invoicesync.http._pool import build

    pool = new_pool(base, headers={"Accept": "application/json", "ApiKey": "k"})
    timeout = kwargs.pop("timeout", None)
    ours = build(pool, method, url, timeout=timeout, **kwargs)  # type: ignore[arg-type]
    theirs = pool.build_request(method, url, timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
                                **kwargs)  # type: ignore[arg-type]
    assert (ours.method, ours.url, ours.url.raw_path) == (theirs.method, theirs.url, theirs.url.raw_path)
    assert ours.headers.multi_items() == theirs.headers.multi_items()
    assert ours.extensions == theirs.extensions and ours.read() == theirs.read()


def test_the_common_request_is_built_without_httpx_build_request(monkeypatch: pytest.MonkeyPatch) -> None:
    from invoicesync.http._pool import build

    def refuse(*args: object, **kwargs: object) -> httpx.Request:
        raise AssertionError("httpx.Client.build_request was used")

    monkeypatch.setattr(httpx.Client, "build_request", refuse)
    for base in ("https://svc.test", "https://svc.test/api/"):
        request = build(new_pool(base), "GET", "/orders/7", headers={"PartyID": "42"})
        assert str(request.url) == base.rstrip("/") + "/orders/7"
