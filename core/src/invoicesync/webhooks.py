"""Webhooks from sources, the source-neutral half: register, remove, and check a delivery.

A source plugin speaks its service's webhook protocol through three optional hooks (API 3):
``webhook_subscribe``, ``webhook_unsubscribe`` and ``webhook_verify``. Core keeps what they
register in the state (the service's ids) and the secret store (the signing secrets), and does the
checks every source needs the same way: the time tolerance and refusing a replay. The dashboard
(``invoicesync.server._webhooks``) receives the deliveries and syncs the company they name.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

from .context import Context
from .errors import ConfigError, InvoiceSyncError, WebhookRefused
from .models import Account, AccountDirection, Company, WebhookEvent, WebhookSubscription
from .secrets import redact
from .state import WebhookRecord
from .workspace import Workspace

log = logging.getLogger("invoicesync.webhooks")

HOOKS = ("webhook_subscribe", "webhook_unsubscribe", "webhook_verify")
#: How far a delivery's signing time may be from ours, either way (clock skew, a slow delivery).
#: A delivery is remembered this long and twice over, so a replay is refused while it could pass.
TOLERANCE_SECONDS = 300.0
PATH = "/webhooks"


def supports_webhooks(workspace: Workspace, account: Account) -> bool:
    if account.direction is not AccountDirection.IMPORT:
        return False
    try:
        return set(HOOKS) <= set(workspace.plugins.get(account.plugin).hooks)
    except InvoiceSyncError:
        return False


def check_public_url(url: str) -> str:
    """The dashboard's public address, as services will call it: ``https://`` only (Billit, like
    most services, delivers to nothing else), no query or fragment; without a trailing slash."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(f"the public URL for webhooks must be an https:// address without a query, not {url!r}")
    return url.rstrip("/")


def delivery_url(public_url: str, account: str, company: str) -> str:
    return f"{check_public_url(public_url)}{PATH}/{quote(account, safe='')}/{quote(company, safe='')}"


def _secret_key(company: str, n: int) -> str:
    return f"webhook_secret_{company}_{n}"


def subscribe(workspace: Workspace, account: Account, public_url: str) -> list[str]:
    """Register webhooks for each chosen company of ``account`` that has none at this address; a
    company registered for another address is moved. The companies newly registered."""
    if not supports_webhooks(workspace, account):
        return []
    known = {r.company: r for r in workspace.state.webhooks(account.name)}
    chosen = {c.id for c in account.companies}
    done = []
    ctx = workspace.context(account)
    try:
        for company_id, stale in known.items():
            if company_id not in chosen:  # no longer synced: its hooks go
                _remove(workspace, account, stale, ctx)
        for company in account.companies:
            url = delivery_url(public_url, account.name, company.id)
            record = known.get(company.id)
            if record is not None and record.url == url:
                continue
            if record is not None:
                _remove(workspace, account, record, ctx)
            subscription = workspace.plugins.call(account.plugin, "webhook_subscribe", account=account,
                                                  company=company, ctx=ctx, url=url)
            _keep(workspace, account, company, url, subscription)
            done.append(company.id)
    finally:
        ctx.close()
    return done


def _keep(workspace: Workspace, account: Account, company: Company, url: str,
          subscription: WebhookSubscription) -> None:
    secrets = workspace.secrets(account.name)
    keys = [_secret_key(company.id, n) for n in range(len(subscription.secrets))]
    for key, value in zip(keys, subscription.secrets, strict=True):
        secrets.set(key, value)
    workspace.state.save_webhook(WebhookRecord(account.name, company.id, url, list(subscription.ids), keys),
                                 datetime.now(UTC).isoformat(timespec="seconds"))


def _secrets_of(workspace: Workspace, record: WebhookRecord) -> list[str]:
    store = workspace.secrets(record.account)
    return [value for key in record.secret_keys if (value := store.get(key))]


def _remove(workspace: Workspace, account: Account, record: WebhookRecord, ctx: Context) -> None:
    company = next((c for c in account.companies if c.id == record.company), Company(id=record.company, name=""))
    subscription = WebhookSubscription(ids=record.ids, secrets=_secrets_of(workspace, record))
    workspace.plugins.call(account.plugin, "webhook_unsubscribe", account=account, company=company, ctx=ctx,
                           subscription=subscription)
    for key in record.secret_keys:
        workspace.secrets(account.name).delete(key)
    workspace.state.delete_webhook(account.name, record.company)


def unsubscribe(workspace: Workspace, account: Account) -> list[str]:
    """Remove every webhook registered for ``account`` (disconnect). The companies done; one the
    service fails to remove is logged and its record kept, so a later disconnect tries again."""
    records = workspace.state.webhooks(account.name)
    if not records or not supports_webhooks(workspace, account):
        return []
    done = []
    ctx = workspace.context(account)
    try:
        for record in records:
            try:
                _remove(workspace, account, record, ctx)
                done.append(record.company)
            except InvoiceSyncError as exc:
                log.warning("could not remove the webhooks of %s company %s: %s", account.name, record.company,
                            redact(str(exc)))
    finally:
        ctx.close()
    return done


def verify(workspace: Workspace, account_name: str, company_id: str, headers: Mapping[str, str], body: bytes, *,
           tolerance: float = TOLERANCE_SECONDS, now: datetime | None = None) -> tuple[Account, WebhookEvent]:
    """Check one delivery to ``/webhooks/ACCOUNT/COMPANY``: a registered company, the plugin's
    signature check, the time tolerance, then never the same delivery twice. Raises
    ``WebhookRefused`` naming the reason (never a secret)."""
    account = next((a for a in workspace.accounts() if a.name == account_name), None)
    record = next((r for r in workspace.state.webhooks(account_name) if r.company == company_id), None)
    if account is None or record is None or not supports_webhooks(workspace, account):
        raise WebhookRefused("no webhook is registered at this address")
    company = next((c for c in account.companies if c.id == company_id), None)
    if company is None:
        raise WebhookRefused("the company is no longer synced")
    secrets = _secrets_of(workspace, record)
    if not secrets:
        raise WebhookRefused("no signing secret is stored for this webhook")
    ctx = workspace.context(account)
    try:
        event: WebhookEvent = workspace.plugins.call(
            account.plugin, "webhook_verify", account=account, company=company, ctx=ctx,
            headers={k.lower(): v for k, v in headers.items()}, body=body, secrets=secrets)
    finally:
        ctx.close()
    signed_at = event.signed_at if event.signed_at.tzinfo else event.signed_at.replace(tzinfo=UTC)
    age = ((now or datetime.now(UTC)) - signed_at).total_seconds()
    if abs(age) > tolerance:
        raise WebhookRefused(f"signed {age:.0f} s ago, outside the {tolerance:.0f} s tolerance")
    if not workspace.state.first_sighting(account.name, f"{company_id}:{event.key}", 2 * tolerance):
        raise WebhookRefused("this delivery was received before (a replay)")
    return account, event
