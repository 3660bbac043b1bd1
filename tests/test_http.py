"""The shared HTTP layer: retries, Retry-After, unknown outcomes, token refresh and rotation."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from invoicesync import AuthError, OutcomeUnknown, RateLimited, RemoteError
from invoicesync.http import Budget, HttpClient, OAuth2Client, TokenAuth, TokenSet, Verdict, iter_pages, next_link


def client(handler, sleeps: list[float] | None = None, **kwargs) -> HttpClient:  # type: ignore[no-untyped-def]
    recorded = sleeps if sleeps is not None else []
    return HttpClient("https://svc.test", transport=httpx.MockTransport(handler), sleep=recorded.append, **kwargs)


def test_429_honours_retry_after_then_succeeds() -> None:
    answers = iter([httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(503), httpx.Response(200)])
    sleeps: list[float] = []
    response = client(lambda request: next(answers), sleeps).get("/x")
    assert response.status_code == 200
    assert 7 <= sleeps[0] < 7.2  # the server's word, plus a little jitter
    assert 0 < sleeps[1] <= 1.0  # then exponential backoff


def test_gives_up_with_a_clear_rate_limit_error() -> None:
    http = client(lambda request: httpx.Response(429, headers={"Retry-After": "0"}), max_attempts=3)
    with pytest.raises(RateLimited, match="still rate limited after 3 attempts"):
        http.get("/x")


def test_a_timeout_after_a_non_idempotent_send_is_an_unknown_outcome() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(OutcomeUnknown, match="look the result up"):
        client(handler).post("/create", json={})
    assert calls == ["POST"]  # never sent twice blind
    calls.clear()
    with pytest.raises(RemoteError):
        client(handler, max_attempts=3).get("/read")
    assert calls == ["GET"] * 3  # a read is safe to resend


def test_a_plugin_classifier_can_mark_service_specific_throttles() -> None:
    answers = iter([httpx.Response(403, json={"error": {"errors": [{"reason": "rateLimitExceeded"}]}}),
                    httpx.Response(200)])

    def classify(response: httpx.Response) -> Verdict | None:
        return Verdict.RETRY if response.status_code == 403 and b"rateLimitExceeded" in response.content else None

    assert client(lambda r: next(answers), classify=classify).get("/x").status_code == 200


class Slot:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.writes: list[str] = []

    def get(self, key: str) -> str | None:
        return self.values.get(key)

    def set(self, key: str, value: str) -> None:
        self.values[key] = value
        self.writes.append(json.loads(value)["refresh_token"])


def test_refresh_on_401_stores_the_rotated_token_before_using_it() -> None:
    slot = Slot()
    slot.values["oauth_token"] = TokenSet(access_token="old", refresh_token="r1", expires_at=time.time() + 3600
                                          ).model_dump_json()
    events: list[str] = []

    def token_endpoint(request: httpx.Request) -> httpx.Response:
        form = dict(httpx.QueryParams(request.content.decode()))
        assert form["grant_type"] == "refresh_token" and form["refresh_token"] == "r1"
        events.append("refreshed")
        return httpx.Response(200, json={"access_token": "new", "refresh_token": "r2", "expires_in": 3600})

    def api(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            return token_endpoint(request)
        events.append(f"api with {request.headers['Authorization']} (stored: {slot.writes})")
        return httpx.Response(401) if request.headers["Authorization"] == "Bearer old" else httpx.Response(200)

    oauth = OAuth2Client(client(api), token_url="/token", client_id="app")
    http = client(api, auth=TokenAuth(slot, oauth.refresh))
    assert http.get("/data").status_code == 200
    assert events == ["api with Bearer old (stored: [])", "refreshed", "api with Bearer new (stored: ['r2'])"]


def test_tokens_are_refreshed_before_they_expire() -> None:
    slot = Slot()
    slot.values["oauth_token"] = TokenSet(access_token="old", refresh_token="r1", expires_at=time.time() + 10
                                          ).model_dump_json()
    seen = []

    def api(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Authorization"))
        return httpx.Response(200)

    auth = TokenAuth(slot, lambda t: TokenSet(access_token="fresh", refresh_token="r2", expires_at=time.time() + 3600))
    client(api, auth=auth).get("/x")
    assert seen == ["Bearer fresh"]


def test_a_token_that_expires_again_while_a_request_is_retried_is_refreshed_again() -> None:
    # The fault storm's failure: the first token is refused (expired), the refreshed one meets a
    # 503 and backoff, and expires in turn before the resend. Each refused token earns a refresh;
    # only credentials refused twice in one request stand (test_http_retry_rules covers that).
    slot = Slot()
    slot.values["oauth_token"] = TokenSet(access_token="t0", refresh_token="r", expires_at=time.time() + 3600
                                          ).model_dump_json()
    minted = iter(["t1", "t2"])
    expired = {"t0"}
    seen: list[str] = []

    def api(request: httpx.Request) -> httpx.Response:
        token = request.headers["Authorization"].removeprefix("Bearer ")
        seen.append(token)
        if token in expired:
            return httpx.Response(401)
        if token == "t1":
            expired.add("t1")  # expires during the backoff after this 503
            return httpx.Response(503)
        return httpx.Response(200)

    auth = TokenAuth(slot, lambda t: TokenSet(access_token=next(minted), refresh_token="r",
                                              expires_at=time.time() + 3600))
    assert client(api, auth=auth).get("/x").status_code == 200
    assert seen == ["t0", "t1", "t1", "t2"]


@pytest.mark.parametrize("stored", ["ya29.bare-access-token-not-a-set", '{"refresh_token": "r-only-secret"}'])
def test_a_stored_login_that_is_not_a_token_set_is_an_auth_error_naming_the_relogin_command(stored: str) -> None:
    slot = Slot()
    slot.values["oauth_token"] = stored
    relogin = "invoicesync connect books --name acme --relogin"
    auth = TokenAuth(slot, lambda t: t, relogin=relogin)
    with pytest.raises(AuthError, match=f"run `{relogin}` to log in again") as caught:
        auth.current()
    assert "bare-access-token" not in str(caught.value) and "r-only-secret" not in str(caught.value)
    assert "ValidationError" not in str(caught.value)


def test_budget_pauses_everyone_and_limits_the_rate() -> None:
    now = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    budget = Budget(2, 10.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        with budget.slot():
            pass
    assert waits and waits[0] == pytest.approx(5.0)  # 2 per 10 s: the third waits for a token
    budget.pause(30)
    with budget.slot():
        pass
    assert sum(waits) >= 30


def test_paging_follows_next_links_and_refuses_loops() -> None:
    pages = {"/p1": {"Items": [1, 2], "NextPageLink": "https://svc.test/p2"},
             "/p2": {"Items": [3], "NextPageLink": None}}
    http = client(lambda r: httpx.Response(200, json=pages[r.url.path]))
    items = [i for page in iter_pages(http, "/p1", next_page=next_link("NextPageLink")) for i in page["Items"]]
    assert items == [1, 2, 3]
    looping = client(lambda r: httpx.Response(200, json={"Items": [], "NextPageLink": "/p1"}))
    with pytest.raises(RuntimeError, match="loops"):
        list(iter_pages(looping, "/p1", next_page=next_link("NextPageLink")))


def test_token_requests_can_be_json_and_fall_back_to_a_form_on_415() -> None:
    seen: list[str] = []

    def endpoint(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Content-Type"])
        if request.headers["Content-Type"] == "application/json":
            assert json.loads(request.content) == {"grant_type": "refresh_token", "refresh_token": "r1",
                                                   "client_id": "app", "client_secret": "s3cret-value"}
            return httpx.Response(415)
        return httpx.Response(200, json={"access_token": "a2", "refresh_token": "r2", "expires_in": 60})

    oauth = OAuth2Client(client(endpoint), token_url="/token", client_id="app", client_secret="s3cret-value",
                         json_body=True)
    token = oauth.refresh(TokenSet(access_token="a1", refresh_token="r1"))
    assert (token.access_token, token.refresh_token) == ("a2", "r2")
    assert seen == ["application/json", "application/x-www-form-urlencoded"]


def test_cookies_a_service_sets_are_not_sent_back() -> None:
    # The APIs authenticate every request by header; a load balancer's cookie must not turn
    # requests into a session (and reading each Set-Cookie costs CPU on every answer).
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Cookie"))
        return httpx.Response(200, headers={"Set-Cookie": "affinity=abc; Path=/"}, text="ok")

    http = client(handler)
    http.get("/x")
    http.get("/y")
    assert seen == [None, None]
