"""The emulator's webhooks: ``/v1/webhooks`` registration, and signed deliveries when orders change.

As Billit documents it (docs.billit.be "Webhooks", "Verify Signature"; Swagger ``Webhook``):
- ``POST /v1/webhooks`` ``{"EntityType": "Order"|"Message", "EntityUpdateType": "I"|"U"|"D",
  "WebhookURL": "https://..."}`` (JSON or a form) answers the ``Webhook`` object with its ``Secret``;
  ``GET /v1/webhooks`` lists the company's (no secrets); ``DELETE /v1/webhooks/{id}`` removes one;
  ``POST /v1/webhooks/refresh/{id}`` makes a new secret. Hooks never expire.
- Only ``https://`` addresses: Billit "will refuse to send webhooks" to others; here registering one
  is refused with a ``GenericError``, so a client finds out at once.
- A delivery is a ``POST`` of ``{"UpdatedEntityID", "UpdatedEntityType", "WebhookUpdateTypeTC"}``
  with ``Billit-Signature: t=<unix seconds>,s=<hex HMAC-SHA256 of "{t}.{body}" keyed by the secret>``.

Where Billit is silent, the emulator's choices (each a setting for tests):
- Credentials as every API route; the ``PartyID`` header is *required* here (Billit would fall back
  to the oldest company, which would quietly register a hook for the wrong one).
- ``Idempotent-Key`` (Billit's documented header) makes a repeated registration answer the first one.
- Deliveries: only for orders inserted (``I``) and updated (``U``), not deleted (public clients report
  that deletes trigger none). A delivery that fails (no connection, a TLS error, a non-2xx answer) is
  tried again after each of ``webhook_retry_delays`` seconds, signed anew each time; then dropped.
  Deliveries trust ``webhook_verify`` (a CA file, for a test receiver with a throw-away CA).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from invoicesync.sandbox import Request, Response

from .data import CompanyData

ENTITY_TYPES = ("Order", "Message")
UPDATE_TYPES = ("I", "U", "D")
DEMO_USER_ID = 1


@dataclass
class WebhookDelivery:
    """One attempt at delivering, for tests to read."""

    webhook_id: int
    url: str
    body: bytes
    signature: str
    attempt: int
    status: int | None  #: the receiver's answer; None: no answer (connection or TLS error)
    error: str | None = None
    at: float = 0.0


class WebhookHub:
    """Mixed into ``BillitSandbox`` (before ``OrderAdmin``, whose ``order_changed`` it implements)."""

    companies: list[CompanyData]
    data_lock: threading.RLock
    error: Callable[..., Response]
    route: Callable[..., None]
    _authenticate: Callable[[Request], Response | None]
    _party: Callable[[Request], CompanyData | Response]

    def _init_webhooks(self) -> None:
        self.webhooks: dict[int, dict[str, Any]] = {}
        self._next_webhook_id = 9001
        self._idempotent: dict[tuple[int, str], dict[str, Any]] = {}
        #: What deliveries trust: True (the system CAs), or a CA file (a test receiver's).
        self.webhook_verify: str | bool = True
        self.webhook_retry_delays: tuple[float, ...] = (1.0, 2.0, 4.0)
        self.webhook_timeout = 10.0
        self.webhook_deliveries: list[WebhookDelivery] = []
        self.route("GET", r"/v1/webhooks", self._list_webhooks)
        self.route("POST", r"/v1/webhooks", self._create_webhook)
        self.route("DELETE", r"/v1/webhooks/(?P<webhook_id>-?\d+)", self._delete_webhook)
        self.route("POST", r"/v1/webhooks/refresh/(?P<webhook_id>-?\d+)", self._refresh_webhook)

    # -- registration --------------------------------------------------------------------------

    def _webhook_company(self, request: Request) -> CompanyData | Response:
        denied = self._authenticate(request)
        if denied is not None:
            return denied
        if not (request.headers.get("partyid") or "").strip():
            return self.error(400, "GenericError", "Send the company's PartyID header.")
        return self._party(request)

    def _create_webhook(self, request: Request) -> Response:
        company = self._webhook_company(request)
        if isinstance(company, Response):
            return company
        body = _read_body(request)
        if body is None:
            return self.error(400, "GenericError", "The webhook could not be read.")
        entity, update, url = body.get("EntityType"), body.get("EntityUpdateType"), body.get("WebhookURL")
        if entity not in ENTITY_TYPES:
            return self.error(400, "GenericError", f"EntityType must be one of {', '.join(ENTITY_TYPES)}.")
        if update not in (None, "", *UPDATE_TYPES):
            return self.error(400, "GenericError", f"EntityUpdateType must be one of {', '.join(UPDATE_TYPES)}.")
        if not _is_https(url):
            return self.error(400, "GenericError", "The WebhookURL must be an https:// address.")
        key = (request.headers.get("idempotent-key") or "").strip()
        with self.data_lock:
            if key and (company.party_id, key) in self._idempotent:
                return Response.json(self._idempotent[(company.party_id, key)])
            hook = {"WebhookID": self._next_webhook_id, "CompanyID": company.party_id, "UserID": DEMO_USER_ID,
                    "EntityType": entity, "EntityUpdateType": update or None, "WebhookURL": url,
                    "Secret": secrets.token_hex(32)}
            self._next_webhook_id += 1
            self.webhooks[hook["WebhookID"]] = hook
            answer = {k: v for k, v in hook.items() if v is not None}
            if key:
                self._idempotent[(company.party_id, key)] = answer
        return Response.json(answer)

    def _list_webhooks(self, request: Request) -> Response:
        company = self._webhook_company(request)
        if isinstance(company, Response):
            return company
        with self.data_lock:
            hooks = [{k: v for k, v in h.items() if k != "Secret" and v is not None}
                     for h in self.webhooks.values() if h["CompanyID"] == company.party_id]
        return Response.json(hooks)

    def _own_webhook(self, request: Request) -> dict[str, Any] | Response:
        company = self._webhook_company(request)
        if isinstance(company, Response):
            return company
        hook = self.webhooks.get(int(request.params["webhook_id"]))
        if hook is None or hook["CompanyID"] != company.party_id:  # Billit's "no access" is a 401
            return self.error(401, "Unauthorized", f"You have no access to webhook {request.params['webhook_id']}.")
        return hook

    def _delete_webhook(self, request: Request) -> Response:
        with self.data_lock:
            hook = self._own_webhook(request)
            if isinstance(hook, Response):
                return hook
            del self.webhooks[hook["WebhookID"]]
        return Response.json("Webhook deleted")

    def _refresh_webhook(self, request: Request) -> Response:
        with self.data_lock:
            hook = self._own_webhook(request)
            if isinstance(hook, Response):
                return hook
            hook["Secret"] = secrets.token_hex(32)
            return Response.json(hook["Secret"])

    # -- deliveries ----------------------------------------------------------------------------

    def order_changed(self, party_id: int, order_id: int, update_type: str) -> None:
        """Called by every edit and addition of an order: deliver to the company's matching hooks."""
        if update_type == "D":
            return
        with self.data_lock:
            hooks = [dict(h) for h in self.webhooks.values() if h["CompanyID"] == party_id
                     and h["EntityType"] == "Order" and h["EntityUpdateType"] in (None, update_type)]
        body = json.dumps({"UpdatedEntityID": order_id, "UpdatedEntityType": "Order",
                           "WebhookUpdateTypeTC": update_type}, separators=(",", ":")).encode()
        for hook in hooks:
            threading.Thread(target=self._deliver, args=(hook, body), name="billit-sandbox-webhook",
                             daemon=True).start()

    def _deliver(self, hook: dict[str, Any], body: bytes) -> None:
        for attempt, delay in enumerate((0.0, *self.webhook_retry_delays), start=1):
            time.sleep(delay)
            with self.data_lock:
                current = self.webhooks.get(hook["WebhookID"])
            if current is None:  # deleted meanwhile: Billit stops calling
                return
            stamp = int(time.time())
            signature = f"t={stamp},s={sign(current['Secret'], stamp, body)}"
            record = WebhookDelivery(hook["WebhookID"], hook["WebhookURL"], body, signature, attempt, None,
                                     at=time.time())
            try:
                response = httpx.post(hook["WebhookURL"], content=body, verify=self._trust(),
                                      timeout=self.webhook_timeout,
                                      headers={"Content-Type": "application/json", "Billit-Signature": signature})
                record.status = response.status_code
            except httpx.HTTPError as exc:
                record.error = f"{type(exc).__name__}: {exc}"
            with self.data_lock:
                self.webhook_deliveries.append(record)
            if record.status is not None and 200 <= record.status < 300:
                return


    def _trust(self) -> ssl.SSLContext | bool:
        if isinstance(self.webhook_verify, str):
            return ssl.create_default_context(cafile=self.webhook_verify)
        return self.webhook_verify


def sign(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def _read_body(request: Request) -> dict[str, Any] | None:
    content_type = (request.headers.get("content-type") or "").lower()
    try:
        if "form" in content_type:
            return {k: v[0] for k, v in urllib.parse.parse_qs(request.body.decode()).items()}
        body = request.json()
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def _is_https(url: Any) -> bool:
    if not isinstance(url, str):
        return False
    parts = urllib.parse.urlsplit(url)
    return parts.scheme == "https" and bool(parts.hostname)
