"""Billit's webhooks: register ``Order`` insert/update hooks per company, remove them, check a delivery.

Billit's facts this module encodes (docs.billit.be "Webhooks" and "Verify Signature", the Swagger's
``Webhook`` definition):
- ``POST /v1/webhooks`` with ``{"EntityType", "EntityUpdateType", "WebhookURL"}`` for the company
  in ``PartyID``; the answer is the ``Webhook`` object, whose ``Secret`` signs the deliveries.
  One hook per update type (the docs recommend always naming one): ``I`` (new) and ``U`` (changed).
- ``DELETE /v1/webhooks/{webhookID}`` removes one. Hooks never expire. Billit delivers to
  ``https://`` addresses only.
- A delivery carries ``Billit-Signature: t=<unix seconds>,s=<hex>``, ``s`` being the HMAC-SHA256 of
  ``"{t}.{raw body}"`` keyed with the secret; an ``Order`` body is
  ``{"UpdatedEntityID": <OrderID>, "UpdatedEntityType": "Order", "WebhookUpdateTypeTC": "I"|"U"}``.
  It does not name the company: the address does (one per company, see ``invoicesync.webhooks``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

from invoicesync import Company, RemoteError, WebhookEvent, WebhookRefused, WebhookSubscription

from .client import SERVICE, BillitClient

HEADER = "billit-signature"
#: Order hooks only: Message hooks report e-invoice transport states, which change no document here.
UPDATE_TYPES = ("I", "U")


def subscribe(client: BillitClient, company: Company, url: str) -> WebhookSubscription:
    ids: list[str] = []
    secrets: list[str] = []
    try:
        for update_type in UPDATE_TYPES:
            hook = client.post_json("/v1/webhooks", party_id=company.id, idempotency_key=str(uuid.uuid4()), body={
                "EntityType": "Order", "EntityUpdateType": update_type, "WebhookURL": url})
            if not isinstance(hook, dict) or hook.get("WebhookID") is None or not hook.get("Secret"):
                raise RemoteError("POST /v1/webhooks: the answer has no WebhookID or Secret", service=SERVICE)
            ids.append(str(hook["WebhookID"]))
            secrets.append(str(hook["Secret"]))
    except Exception:
        unsubscribe(client, company, ids)  # no half registration left behind at Billit
        raise
    return WebhookSubscription(ids=ids, secrets=secrets)


def unsubscribe(client: BillitClient, company: Company, ids: list[str]) -> None:
    for webhook_id in ids:
        try:
            client.delete(f"/v1/webhooks/{webhook_id}", party_id=company.id)
        except RemoteError as exc:
            # Billit answers 401 for what this login cannot reach, an unknown id included: already gone.
            if exc.status not in (401, 404):
                raise


def signature_parts(header: str) -> tuple[int, str]:
    """``t`` and ``s`` of a ``Billit-Signature`` header (split on ``,`` then ``=``, as the docs say)."""
    parts: dict[str, str] = {}
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if sep:
            parts[key.strip()] = value.strip()
    t, s = parts.get("t"), parts.get("s")
    if not t or not s or not t.isdigit():
        raise WebhookRefused("the Billit-Signature header is not t=<seconds>,s=<hex>")
    return int(t), s.lower()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(headers: Mapping[str, str], body: bytes, secrets: list[str]) -> WebhookEvent:
    header = headers.get(HEADER)
    if not header:
        raise WebhookRefused("no Billit-Signature header")
    timestamp, given = signature_parts(header)
    if not any(hmac.compare_digest(sign(secret, timestamp, body), given) for secret in secrets):
        raise WebhookRefused("the Billit-Signature does not match the body")
    try:
        payload = json.loads(body)
    except ValueError:
        raise WebhookRefused("the body is not JSON") from None
    if not isinstance(payload, dict):
        raise WebhookRefused("the body is not a JSON object")
    entity = payload.get("UpdatedEntityID")
    # The signature is the delivery's key. Two edits of one order within the same second give two
    # identical deliveries, the second refused as a replay: the first one's (debounced) sync covers both.
    return WebhookEvent(signed_at=datetime.fromtimestamp(timestamp, UTC), key=given,
                        document_ids=[str(entity)] if entity is not None else [])
