"""The emulator is as strict as Billit's OData by default; the lenient variant only by option.

Each strictness here is one a client could otherwise get away with against a naive emulator and
then fail on against Billit: keyword case, literal types, DateTime offsets, property-name case,
the error shape, the 3600-second token lifetime."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from invoicesync_billit.sandbox import DEMO_API_KEY, BillitSandbox

REFUSED_BY_BILLIT = {
    "keyword case": ["OrderType EQ 'Invoice'", "Paid eq FALSE", "OrderType eq 'Invoice' AND Paid eq false"],
    "literal type": ["LastModified ge '2025-01-01'", "OrderID gt '5'", "Paid eq 'false'", "OrderType eq 5",
                     "TotalIncl gt DateTime'2025-01-01'"],
    "DateTime offset": ["LastModified ge DateTime'2025-01-01T00:00:00Z'",
                        "LastModified ge DateTime'2025-01-01T00:00:00+01:00'"],
}


@pytest.fixture
def sandbox(serve_sandbox: Any) -> Iterator[tuple[BillitSandbox, httpx.Client]]:
    app = BillitSandbox(documents=30, companies=1, seed=5)
    server = serve_sandbox(app)
    with httpx.Client(base_url=server.url, headers={"ApiKey": DEMO_API_KEY}, timeout=10) as client:
        yield app, client


@pytest.mark.parametrize(("kind", "query"), [(k, q) for k, qs in REFUSED_BY_BILLIT.items() for q in qs])
def test_what_billit_refuses_is_refused_unless_lenient(sandbox: tuple[BillitSandbox, httpx.Client],
                                                       kind: str, query: str) -> None:
    app, client = sandbox
    answer = client.get("/v1/orders", params={"$filter": query})
    assert answer.status_code == 400, (kind, answer.text)
    assert answer.json()["errors"][0]["Code"] == "GenericError"
    app.lenient_odata = True
    # The lenient variant reads what it can compare; comparing a number with text, or an
    # offset with a local time, fails there too (as a plain comparison error).
    incomparable = query in ("OrderID gt '5'", "LastModified ge DateTime'2025-01-01T00:00:00+01:00'")
    assert client.get("/v1/orders", params={"$filter": query}).status_code == (400 if incomparable else 200)


def test_orderby_directions_are_lowercase_keywords(sandbox: tuple[BillitSandbox, httpx.Client]) -> None:
    app, client = sandbox
    assert client.get("/v1/orders", params={"$orderby": "LastModified asc,OrderID desc"}).status_code == 200
    answer = client.get("/v1/orders", params={"$orderby": "LastModified ASC"})
    assert answer.status_code == 400 and answer.json()["errors"][0]["Code"] == "GenericError"
    app.lenient_odata = True
    assert client.get("/v1/orders", params={"$orderby": "LastModified ASC"}).status_code == 200


def test_typed_literals_and_documented_forms_are_accepted(sandbox: tuple[BillitSandbox, httpx.Client]) -> None:
    _, client = sandbox
    for query in ("OrderID gt 1100004", "LastModified ge DateTime'2025-01-01T10:15:00' and "
                  "LastModified lt datetime'2026-01-01'", "TotalIncl gt 10", "Paid eq false",
                  "CounterParty/PartyID eq '600001'", "CounterParty/PartyID eq 600001", "Reference eq null"):
        answer = client.get("/v1/orders", params={"$filter": query})
        assert answer.status_code == 200, (query, answer.text)


def test_type_errors_name_both_types(sandbox: tuple[BillitSandbox, httpx.Client]) -> None:
    _, client = sandbox
    error = client.get("/v1/orders", params={"$filter": "LastModified ge '2025-01-01'"}).json()["errors"][0]
    assert "'Edm.DateTime' and 'Edm.String'" in error["Description"]


def test_property_names_match_exactly(sandbox: tuple[BillitSandbox, httpx.Client]) -> None:
    _, client = sandbox
    answer = client.get("/v1/orders", params={"$filter": "lastmodified ge DateTime'2025-01-01'"})
    assert answer.status_code == 400
    assert "Could not find a property named 'lastmodified'" in answer.json()["errors"][0]["Description"]


def test_errors_have_billits_shape(sandbox: tuple[BillitSandbox, httpx.Client]) -> None:
    _, client = sandbox
    for answer, status in ((client.get("/v1/orders/999"), 401),
                           (client.get("/v1/orders", headers={"ApiKey": "wrong"}), 401),
                           (client.get("/v1/orders", headers={"PartyID": "1"}), 401),
                           (client.get("/v1/orders", params={"$top": "many"}), 400)):
        assert answer.status_code == status
        errors = answer.json()["errors"]
        assert isinstance(errors, list) and errors[0]["Code"] and "Description" in errors[0]


def test_access_tokens_are_reported_and_kept_for_3600_seconds() -> None:
    app = BillitSandbox(documents=1, companies=1)
    token = app.issue_login()
    assert token["token_type"] == "Bearer" and token["expires_in"] == 3600
    assert app.oauth.check_bearer(token["access_token"]) is None
