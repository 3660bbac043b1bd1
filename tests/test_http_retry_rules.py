"""The retry rules of the shared HTTP layer: what may be sent again after a 5xx, a throttle or a
lost answer, and that a streamed download that keeps failing reports the server's own answer."""

from __future__ import annotations

import httpx
import pytest
from invoicesync import OutcomeUnknown, RemoteError, ServerError
from invoicesync.http import Budget, HttpClient


def client(handler, **kwargs) -> HttpClient:  # type: ignore[no-untyped-def]
    return HttpClient("https://svc.test", transport=httpx.MockTransport(handler), sleep=lambda s: None, **kwargs)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_5xx_to_a_write_is_an_unknown_outcome_not_a_resend(status: int) -> None:
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.method)
        return httpx.Response(status, json={"error": {"message": "gateway gave up"}})

    with pytest.raises(OutcomeUnknown, match="look the result up") as info:
        client(handler).post("/purchaseInvoices", json={"number": "1"})
    assert sent == ["POST"]  # the draft may exist: never sent twice blind
    assert info.value.status == status and "gateway gave up" in str(info.value)


def test_a_503_with_retry_after_to_a_write_still_pauses_the_account_but_is_not_resent() -> None:
    sent: list[str] = []
    now = [100.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    budget = Budget(clock=lambda: now[0], sleep=sleep)

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.method)
        return httpx.Response(503, headers={"Retry-After": "30"})

    with pytest.raises(OutcomeUnknown):
        client(handler, budget=budget).post("/files")
    assert sent == ["POST"]
    waits.clear()
    with budget.slot():  # the next request of this account waits as the server asked
        pass
    assert waits == [pytest.approx(30.0)]


def test_a_write_marked_idempotent_is_resent_after_a_5xx() -> None:
    answers = iter([httpx.Response(504), httpx.Response(200, json={"session_id": "s1"})])
    response = client(lambda request: next(answers)).post("/upload_session/start", idempotent=True)
    assert response.json() == {"session_id": "s1"}


def test_throttles_are_refusals_before_any_work_so_writes_are_resent() -> None:
    sent: list[str] = []
    answers = iter([httpx.Response(429, headers={"Retry-After": "0"}), httpx.Response(201, json={"id": "x"})])

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.method)
        return next(answers)

    assert client(handler).post("/create").status_code == 201
    assert sent == ["POST", "POST"]


def test_reads_are_still_resent_after_a_5xx() -> None:
    answers = iter([httpx.Response(500), httpx.Response(503), httpx.Response(200, text="ok")])
    assert client(lambda request: next(answers)).get("/list").text == "ok"


def _failing_download(request: httpx.Request) -> httpx.Response:
    # A streamed body (an iterator): httpx does not read it before the client looks at it.
    return httpx.Response(503, content=iter([b'{"message": "storage node down"}']),
                          headers={"Content-Type": "application/json"})


def test_a_download_that_keeps_failing_reports_the_servers_answer_not_stream_closed() -> None:
    http = client(_failing_download, max_attempts=3)
    with pytest.raises(ServerError) as info, http.stream("GET", "/files/1"):
        pass
    assert info.value.status == 503
    assert "storage node down" in str(info.value)


def test_a_download_that_keeps_failing_goes_through_the_plugins_error_parser() -> None:
    def parse(response: httpx.Response) -> RemoteError:
        return RemoteError(f"service says: {response.json()['message']}", status=response.status_code)

    http = client(_failing_download, max_attempts=2, error_parser=parse)
    with pytest.raises(RemoteError, match="service says: storage node down") as info, http.stream("GET", "/f"):
        pass
    assert info.value.status == 503


def test_a_streamed_401_that_no_refresh_can_fix_reports_the_servers_answer() -> None:
    class NoRefresh:
        def apply(self, request: httpx.Request) -> None:
            request.headers["ApiKey"] = "k"

        def refresh(self) -> bool:
            return False

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, content=iter([b"key revoked"]))

    with pytest.raises(RemoteError, match="key revoked") as info, client(handler, auth=NoRefresh()).stream("GET", "/f"):
        pass
    assert info.value.status == 401


def test_a_401_that_a_token_fresh_from_a_refresh_meets_stands() -> None:
    refreshes: list[int] = []

    class Minting:
        def apply(self, request: httpx.Request) -> None:
            request.headers["Authorization"] = f"Bearer t{len(refreshes)}"

        def refresh(self) -> bool:
            refreshes.append(1)
            return True

    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers["Authorization"])
        return httpx.Response(401, json={"error": "user removed"})

    with pytest.raises(RemoteError, match="user removed") as info:
        client(handler, auth=Minting(), max_attempts=4).get("/f")
    assert info.value.status == 401
    # A new token refused at once is not an expiry: one refresh, not one per attempt (each of
    # which would spend a single-use refresh token).
    assert sent == ["Bearer t0", "Bearer t1"] and len(refreshes) == 1


def test_the_same_credentials_refused_twice_are_not_refreshed_again() -> None:
    refreshes: list[int] = []

    class Unchanged:  # a refresh that hands back the token the service refused
        def apply(self, request: httpx.Request) -> None:
            request.headers["Authorization"] = "Bearer same"

        def refresh(self) -> bool:
            refreshes.append(1)
            return True

    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers["Authorization"])
        return httpx.Response(401)

    with pytest.raises(RemoteError) as info:
        client(handler, auth=Unchanged()).get("/f")
    assert info.value.status == 401 and len(sent) == 2 and len(refreshes) == 1
