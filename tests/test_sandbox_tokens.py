"""Core's shared sandbox token endpoint (``invoicesync.sandbox.TokenServer``): the rules every
service emulator relies on, checked once here on a small made-up service."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from invoicesync.sandbox import (
    IssuedAccess,
    OAuthClient,
    Refusals,
    Request,
    Response,
    TokenError,
    TokenServer,
    s256,
    with_query,
)

REDIRECT = "http://127.0.0.1:8765/callback"


class Service(TokenServer[OAuthClient]):
    refusals = Refusals(
        unsupported_grant=TokenError(400, "unsupported_grant_type", "no {grant}"),
        unknown_client=TokenError(400, "invalid_client", "who is {client_id}?"),
        bad_secret=TokenError(401, "invalid_client", "wrong secret"),
        bad_code=TokenError(400, "invalid_grant", "bad code"),
        code_mismatch=TokenError(400, "invalid_grant", "code of another client or redirect"),
        bad_verifier=TokenError(400, "invalid_grant", "bad verifier"),
        no_client_auth=TokenError(400, "invalid_request", "no secret and no PKCE"),
        bad_refresh=TokenError(400, "invalid_grant", "bad refresh token"),
        refresh_other_client=TokenError(400, "invalid_grant", "another client's refresh token"),
        scope_exceeds=TokenError(400, "invalid_scope", "more than granted"),
    )
    grants = ("authorization_code", "refresh_token", "client_credentials")

    def __init__(self) -> None:
        super().__init__({"app": OAuthClient("app", "s3cret"), "other": OAuthClient("other", "x"),
                          "public": OAuthClient("public", None)}, 600)

    def render(self, error: TokenError, request: Request) -> Response:
        return Response.json({"error": error.error, "why": error.description}, error.status)

    def extra_fields(self, grant: str, access: IssuedAccess) -> dict[str, Any]:
        return {"grant": grant}

    def check_client_scope(self, client: OAuthClient, scope: str) -> None:
        if scope != "api/.default":
            raise TokenError(400, "invalid_scope", f"not {scope}")


def call(server: TokenServer[Any], form: dict[str, str] | None = None, *, content: bytes | None = None,
         content_type: str = "application/x-www-form-urlencoded",
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    body = content if content is not None else httpx.QueryParams(form or {}).__str__().encode()
    request = Request("POST", "/token", httpx.Headers({"content-type": content_type, **(headers or {})}),
                      iter([body]), "http://sandbox")
    response = server.token(request)
    assert isinstance(response.body, bytes)
    return response.status, json.loads(response.body)


def login(server: Service, client: str = "app", secret: str = "s3cret", **code_args: Any) -> dict[str, Any]:
    code = server.issue_code(client, REDIRECT, **code_args)
    status, body = call(server, {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                                 "client_id": client, "client_secret": secret})
    assert status == 200, body
    return body


def refresh(server: TokenServer[Any], token: str, client: str = "app", secret: str = "s3cret",
            **more: str) -> tuple[int, dict[str, Any]]:
    return call(server, {"grant_type": "refresh_token", "refresh_token": token, "client_id": client,
                         "client_secret": secret, **more})


def test_a_code_buys_a_token_pair_with_the_services_fields() -> None:
    server = Service()
    body = login(server, scope="read")
    assert body["token_type"] == "Bearer" and body["expires_in"] == 600 and body["grant"] == "authorization_code"
    assert server.valid(body["access_token"]) is not None
    assert body["refresh_token"] in server.refresh_tokens


def test_a_code_works_once() -> None:
    server = Service()
    code = server.issue_code("app", REDIRECT)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "client_id": "app",
            "client_secret": "s3cret"}
    assert call(server, form)[0] == 200
    assert call(server, form) == (400, {"error": "invalid_grant", "why": "bad code"})


def test_a_refused_exchange_spends_the_code_too() -> None:
    server = Service()
    code = server.issue_code("app", REDIRECT)
    form = {"grant_type": "authorization_code", "code": code, "client_id": "app", "client_secret": "s3cret"}
    status, body = call(server, {**form, "redirect_uri": "http://127.0.0.1:1/elsewhere"})
    assert (status, body["why"]) == (400, "code of another client or redirect")
    assert call(server, {**form, "redirect_uri": REDIRECT})[1]["why"] == "bad code"


def test_a_code_is_bound_to_its_client() -> None:
    server = Service()
    code = server.issue_code("app", REDIRECT)
    status, body = call(server, {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                                 "client_id": "other", "client_secret": "x"})
    assert (status, body["why"]) == (400, "code of another client or redirect")


def test_an_expired_code_is_refused() -> None:
    server = Service()
    code = server.issue_code("app", REDIRECT)
    clock = server.codes.clock
    server.codes.clock = lambda: clock() + 601
    status, body = call(server, {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                                 "client_id": "app", "client_secret": "s3cret"})
    assert (status, body["why"]) == (400, "bad code")


@pytest.mark.parametrize("secret", ["wrong", "", "s3cret "])
def test_a_wrong_client_secret_is_refused_and_the_code_not_spent(secret: str) -> None:
    server = Service()
    code = server.issue_code("app", REDIRECT)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "client_id": "app"}
    assert call(server, {**form, "client_secret": secret}) == (401, {"error": "invalid_client", "why": "wrong secret"})
    assert call(server, form)[0] == 401  # no secret at all: a confidential client must send it
    assert call(server, {**form, "client_secret": "s3cret"})[0] == 200


def test_an_unknown_client_is_named_in_the_refusal() -> None:
    status, body = call(Service(), {"grant_type": "refresh_token", "client_id": "nobody", "client_secret": "x"})
    assert (status, body["why"]) == (400, "who is nobody?")


def test_http_basic_counts_only_where_the_service_takes_it() -> None:
    server = Service()
    code = server.issue_code("app", REDIRECT)
    basic = {"authorization": "Basic " + base64.b64encode(b"app:s3cret").decode()}
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    assert call(server, form, headers=basic)[1]["why"] == "who is None?"
    server.basic_auth = True
    wrong = {"authorization": "Basic " + base64.b64encode(b"app:nope").decode()}
    assert call(server, form, headers=wrong)[0] == 401
    code = server.issue_code("app", REDIRECT)
    assert call(server, {**form, "code": code}, headers=basic)[0] == 200


def test_refresh_tokens_rotate_and_a_spent_one_is_refused() -> None:
    server = Service()
    server.rotate_refresh = True
    first = login(server)["refresh_token"]
    status, body = refresh(server, first)
    assert status == 200 and body["refresh_token"] != first and body["grant"] == "refresh_token"
    assert refresh(server, first) == (400, {"error": "invalid_grant", "why": "bad refresh token"})
    assert first in server.spent_refresh_tokens and first not in server.refresh_tokens
    assert refresh(server, body["refresh_token"])[0] == 200
    assert server.refreshes == 2


def test_long_lived_refresh_tokens_stay_and_none_comes_back() -> None:
    server = Service()
    token = login(server)["refresh_token"]
    for _ in range(2):
        status, body = refresh(server, token)
        assert status == 200 and "refresh_token" not in body
    assert token in server.refresh_tokens and server.refreshes == 2


def test_a_refresh_token_works_only_for_its_client() -> None:
    server = Service()
    token = login(server)["refresh_token"]
    assert refresh(server, token, "other", "x")[1]["why"] == "another client's refresh token"
    assert refresh(server, token, "app", "wrong")[0] == 401
    assert refresh(server, token)[0] == 200


def test_a_refresh_asks_for_at_most_the_granted_scope_where_the_service_allows_narrowing() -> None:
    server = Service()
    token = login(server, scope="read write")["refresh_token"]
    assert refresh(server, token, scope="read admin")[0] == 200  # not a narrowing service: scope is ignored
    server.refresh_scope = True
    assert refresh(server, token, scope="read admin")[1]["why"] == "more than granted"
    status, body = refresh(server, token, scope="read")
    assert status == 200 and server.valid(body["access_token"]).scope == "read"  # type: ignore[union-attr]


def test_pkce_is_checked_and_a_public_client_needs_it() -> None:
    server = Service()
    server.public_clients = True
    verifier = "v" * 50
    form = {"grant_type": "authorization_code", "redirect_uri": REDIRECT, "client_id": "public"}
    code = server.issue_code("public", REDIRECT, challenge=s256(verifier))
    assert call(server, {**form, "code": code, "code_verifier": "w" * 50})[1]["why"] == "bad verifier"
    code = server.issue_code("public", REDIRECT, challenge=s256(verifier))
    assert call(server, {**form, "code": code, "code_verifier": verifier})[0] == 200
    code = server.issue_code("public", REDIRECT)
    assert call(server, {**form, "code": code})[1]["why"] == "no secret and no PKCE"
    code = server.issue_code("app", REDIRECT)  # a confidential client without PKCE: its secret vouches
    assert call(server, {**form, "code": code, "client_id": "app", "client_secret": "s3cret"})[0] == 200


def test_client_credentials_follow_the_services_scope_rule_and_issue_no_refresh_token() -> None:
    server = Service()
    form = {"grant_type": "client_credentials", "client_id": "app", "client_secret": "s3cret"}
    assert call(server, {**form, "scope": "api"}) == (400, {"error": "invalid_scope", "why": "not api"})
    status, body = call(server, {**form, "scope": "api/.default"})
    assert status == 200 and "refresh_token" not in body and server.valid(body["access_token"]) is not None


def test_an_unsupported_grant_is_refused_after_or_before_the_client_as_the_service_does() -> None:
    server = Service()
    form = {"grant_type": "password", "client_id": "app", "client_secret": "bad"}
    assert call(server, form)[1]["why"] == "wrong secret"
    assert call(server, {**form, "client_secret": "s3cret"})[1]["why"] == "no password"
    server.grant_before_client = True
    assert call(server, form)[1]["why"] == "no password"


def test_json_bodies_only_where_the_service_takes_them() -> None:
    server = Service()
    token = login(server)["refresh_token"]
    content = json.dumps({"grant_type": "refresh_token", "refresh_token": token, "client_id": "app",
                          "client_secret": "s3cret"}).encode()
    assert call(server, content=content, content_type="application/json")[1]["why"] == "who is None?"
    server.accept_json = True
    assert call(server, content=content, content_type="application/json")[0] == 200


def test_revoked_and_expired_access_tokens_are_told_apart() -> None:
    server = Service()
    first, second = login(server)["access_token"], login(server)["access_token"]
    server.revoke(first)
    assert server.lookup(first)[1] == "revoked" and server.lookup("nope") == (None, "unknown")
    server.expire_all()
    assert server.lookup(second)[1] == "expired" and server.valid(second) is None


def test_redirects_back_keep_the_registered_uris_own_query_and_fragment() -> None:
    assert with_query("http://127.0.0.1:9/cb?app=1#top", {"code": "c d", "state": None}) == \
        "http://127.0.0.1:9/cb?app=1&code=c+d#top"
    assert with_query("http://127.0.0.1:9/cb", {"error": "access_denied", "state": "s"}) == \
        "http://127.0.0.1:9/cb?error=access_denied&state=s"
