"""Billit webhooks: the sandbox registers as strictly as Billit documents, the plugin registers and
removes Order I/U hooks per company, checks ``Billit-Signature``, and the sandbox delivers signed."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from invoicesync import RemoteError, WebhookRefused, WebhookSubscription
from invoicesync_billit.sandbox import DEMO_API_KEY, BillitSandbox
from invoicesync_billit.webhooks import sign, signature_parts, verify

HOOK = {"EntityType": "Order", "EntityUpdateType": "U", "WebhookURL": "https://books.example.com/webhooks/a/1"}


@pytest.fixture
def api(serve_sandbox: Any) -> Iterator[tuple[BillitSandbox, httpx.Client, int]]:
    app = BillitSandbox(documents=3, companies=2, seed=3)
    server = serve_sandbox(app)
    party = app.companies[0].party_id
    with httpx.Client(base_url=server.url, headers={"ApiKey": DEMO_API_KEY, "PartyID": str(party)}, timeout=10) as c:
        yield app, c, party


# -- the sandbox's registration is as strict as Billit --------------------------------------------


def test_registration_answers_the_webhook_object_with_its_secret(api: tuple[BillitSandbox, httpx.Client, int]) -> None:
    _app, client, party = api
    answer = client.post("/v1/webhooks", json=HOOK)
    assert answer.status_code == 200, answer.text
    hook = answer.json()
    assert set(hook) == {"WebhookID", "CompanyID", "UserID", "EntityType", "EntityUpdateType", "WebhookURL", "Secret"}
    assert hook["CompanyID"] == party and len(hook["Secret"]) >= 32
    listed = client.get("/v1/webhooks").json()
    assert [h["WebhookID"] for h in listed] == [hook["WebhookID"]]
    assert "Secret" not in listed[0]  # the list never shows a secret


@pytest.mark.parametrize("url", ["http://books.example.com/hook", "ftp://books.example.com/hook", "/relative",
                                 "https://", None])
def test_only_https_addresses_are_registered(api: tuple[BillitSandbox, httpx.Client, int], url: str | None) -> None:
    app, client, _ = api
    answer = client.post("/v1/webhooks", json={**HOOK, "WebhookURL": url})
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["Code"] == "GenericError"
    assert app.webhooks == {}


@pytest.mark.parametrize("body", [{**HOOK, "EntityType": "Invoice"}, {**HOOK, "EntityUpdateType": "X"},
                                  {"WebhookURL": HOOK["WebhookURL"]}])
def test_unknown_entity_and_update_types_are_refused(api: tuple[BillitSandbox, httpx.Client, int],
                                                     body: dict[str, Any]) -> None:
    _, client, _ = api
    assert client.post("/v1/webhooks", json=body).status_code == 400


def test_registration_needs_credentials_and_the_company_header(api: tuple[BillitSandbox, httpx.Client, int]) -> None:
    app, client, party = api
    base = str(client.base_url)
    assert httpx.post(f"{base}/v1/webhooks", json=HOOK, headers={"PartyID": str(party)}).status_code == 401
    assert httpx.post(f"{base}/v1/webhooks", json=HOOK,
                      headers={"ApiKey": "wrong", "PartyID": str(party)}).status_code == 401
    assert httpx.post(f"{base}/v1/webhooks", json=HOOK, headers={"ApiKey": DEMO_API_KEY}).status_code == 400
    assert httpx.post(f"{base}/v1/webhooks", json=HOOK,
                      headers={"ApiKey": DEMO_API_KEY, "PartyID": "999"}).status_code == 401
    assert app.webhooks == {}


def test_a_webhook_of_another_company_cannot_be_deleted_and_an_idempotent_key_registers_once(
        api: tuple[BillitSandbox, httpx.Client, int]) -> None:
    app, client, _ = api
    first = client.post("/v1/webhooks", json=HOOK, headers={"Idempotent-Key": "k1"}).json()
    again = client.post("/v1/webhooks", json=HOOK, headers={"Idempotent-Key": "k1"}).json()
    assert again == first and len(app.webhooks) == 1
    other = app.companies[1].party_id
    assert client.delete(f"/v1/webhooks/{first['WebhookID']}", headers={"PartyID": str(other)}).status_code == 401
    refreshed = client.post(f"/v1/webhooks/refresh/{first['WebhookID']}").json()
    assert refreshed != first["Secret"] and app.webhooks[first["WebhookID"]]["Secret"] == refreshed
    assert client.delete(f"/v1/webhooks/{first['WebhookID']}").status_code == 200
    assert app.webhooks == {}


# -- the plugin's hooks ----------------------------------------------------------------------------


def test_subscribe_registers_order_insert_and_update_for_the_company_and_unsubscribe_removes_them(
        billit: Callable[..., Any]) -> None:
    h = billit(documents=2, companies=2)
    companies = h.connect()
    second = companies[1]
    url = "https://books.example.com/webhooks/books/" + second.id
    subscription: WebhookSubscription = h.call("webhook_subscribe", company=second, url=url)
    hooks = sorted(h.app.webhooks.values(), key=lambda w: w["EntityUpdateType"])
    assert [(w["CompanyID"], w["EntityType"], w["EntityUpdateType"], w["WebhookURL"]) for w in hooks] == [
        (int(second.id), "Order", "I", url), (int(second.id), "Order", "U", url)]
    assert subscription.ids == [str(w["WebhookID"]) for w in sorted(h.app.webhooks.values(),
                                                                      key=lambda w: w["WebhookID"])]
    assert sorted(subscription.secrets) == sorted(w["Secret"] for w in hooks)
    h.call("webhook_unsubscribe", company=second, subscription=subscription)
    assert h.app.webhooks == {}
    h.call("webhook_unsubscribe", company=second, subscription=subscription)  # already gone: not an error


def test_subscribe_to_a_plain_http_address_fails_and_leaves_nothing_registered(billit: Callable[..., Any]) -> None:
    h = billit(documents=2, companies=1)
    h.connect()
    with pytest.raises(RemoteError, match="https"):
        h.call("webhook_subscribe", company=h.company, url="http://books.example.com/webhooks/books/1")
    assert h.app.webhooks == {}


def _signed(secret: str, body: bytes, t: int | None = None) -> dict[str, str]:
    t = int(time.time()) if t is None else t
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return {"billit-signature": f"t={t},s={digest}"}


BODY = b'{"UpdatedEntityID":42,"UpdatedEntityType":"Order","WebhookUpdateTypeTC":"U"}'


def test_a_good_signature_is_accepted_with_either_secret_and_names_the_order() -> None:
    event = verify(_signed("second", BODY, 1_700_000_000), BODY, ["first", "second"])
    assert event.document_ids == ["42"]
    assert int(event.signed_at.timestamp()) == 1_700_000_000
    assert event.key == _signed("second", BODY, 1_700_000_000)["billit-signature"].split("s=")[1]


@pytest.mark.parametrize(("headers", "reason"), [
    ({}, "no Billit-Signature"),
    ({"billit-signature": "s=abc"}, "not t=<seconds>"),
    ({"billit-signature": "t=soon,s=abc"}, "not t=<seconds>"),
    (_signed("other secret", BODY), "does not match"),
    ({"billit-signature": _signed("first", BODY)["billit-signature"].replace("s=", "s=0")}, "does not match"),
])
def test_a_missing_malformed_or_wrong_signature_is_refused(headers: dict[str, str], reason: str) -> None:
    with pytest.raises(WebhookRefused, match=reason):
        verify(headers, BODY, ["first"])


def test_the_signature_covers_the_body_and_the_timestamp() -> None:
    headers = _signed("first", BODY, 1_700_000_000)
    with pytest.raises(WebhookRefused):
        verify(headers, BODY.replace(b"42", b"43"), ["first"])
    t, s = signature_parts(headers["billit-signature"])
    with pytest.raises(WebhookRefused):
        verify({"billit-signature": f"t={t + 1},s={s}"}, BODY, ["first"])
    assert sign("first", t, BODY) == s


# -- deliveries ------------------------------------------------------------------------------------


class _Receiver(BaseHTTPRequestHandler):
    answers: list[int]
    received: list[tuple[dict[str, str], bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        status = type(self).answers.pop(0) if type(self).answers else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def tls_receiver(tmp_path: Path) -> Iterator[tuple[str, str, type[_Receiver]]]:
    """An HTTPS receiver with a throw-away CA: its URL, the CA file, what it received."""
    import ssl

    ca = trustme.CA()
    handler = type("Receiver", (_Receiver,), {"answers": [], "received": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}/hook", str(ca_file), handler
    server.shutdown()
    server.server_close()


def _wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_an_edited_order_is_delivered_signed_and_a_failed_delivery_is_tried_again(
        api: tuple[BillitSandbox, httpx.Client, int], tls_receiver: tuple[str, str, type[_Receiver]]) -> None:
    app, client, _party = api
    url, ca_file, receiver = tls_receiver
    app.webhook_verify = ca_file
    app.webhook_retry_delays = (0.05, 0.05)
    hook = client.post("/v1/webhooks", json={**HOOK, "WebhookURL": url}).json()
    client.post("/v1/webhooks", json={**HOOK, "EntityUpdateType": "I", "WebhookURL": url})
    receiver.answers = [500]  # the first attempt fails: Billit's retry (the emulator's choice) follows
    order_id = next(iter(app.companies[0].orders))
    app.edit_order(order_id, Reference="edited")
    _wait_for(lambda: len(receiver.received) == 2 and len(app.webhook_deliveries) == 2)  # answered and recorded
    for headers, body in receiver.received:
        assert json.loads(body) == {"UpdatedEntityID": order_id, "UpdatedEntityType": "Order",
                                    "WebhookUpdateTypeTC": "U"}
        t, s = signature_parts(headers["billit-signature"])
        assert s == sign(hook["Secret"], t, body)  # the U hook's secret, not the I hook's
    assert [(d.attempt, d.status) for d in app.webhook_deliveries] == [(1, 500), (2, 200)]
    app.edit_order(next(iter(app.companies[1].orders)), Reference="another company")  # no hook there
    app.delete_order(order_id)  # deletes trigger none
    time.sleep(0.3)
    assert len(receiver.received) == 2


def test_a_receiver_whose_certificate_is_not_trusted_gets_nothing(
        api: tuple[BillitSandbox, httpx.Client, int], tls_receiver: tuple[str, str, type[_Receiver]]) -> None:
    app, client, _ = api
    url, _, receiver = tls_receiver
    app.webhook_retry_delays = ()
    client.post("/v1/webhooks", json={**HOOK, "WebhookURL": url})
    app.edit_order(next(iter(app.companies[0].orders)), Reference="edited")
    _wait_for(lambda: len(app.webhook_deliveries) == 1)
    assert receiver.received == [] and "SSL" in (app.webhook_deliveries[0].error or "").upper()
