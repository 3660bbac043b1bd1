"""Webhooks in the state: what is registered per (account, company), and the deliveries seen lately.

The registration's ids are plain state (``invoicesync state migrate`` copies them); its signing
secrets are not here at all, only the names of the secret-store keys that hold them. The seen
deliveries are kept only as long as a replay of them could still pass the time check.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

Params = tuple[Any, ...]


@dataclass(frozen=True)
class WebhookRecord:
    account: str
    company: str
    url: str  #: where the service delivers (``PUBLIC_URL/webhooks/ACCOUNT/COMPANY``)
    ids: list[str]  #: the service's ids of the hooks
    secret_keys: list[str]  #: the account's secret-store keys holding the signing secrets


class WebhookQueries:
    """Mixed into ``SqlStore``: written once in SQL both backends speak."""

    def _exec(self, sql: str, params: Params = ()) -> int:
        raise NotImplementedError

    def _all(self, sql: str, params: Params = ()) -> list[Any]:
        raise NotImplementedError

    def save_webhook(self, record: WebhookRecord, created_at: str) -> None:
        self._exec(
            """INSERT INTO webhooks (account, company, url, ids, secret_keys, created_at) VALUES (?, ?, ?, ?, ?, ?)
               ON CONFLICT (account, company) DO UPDATE SET url = excluded.url, ids = excluded.ids,
                   secret_keys = excluded.secret_keys, created_at = excluded.created_at""",
            (record.account, record.company, record.url, json.dumps(record.ids), json.dumps(record.secret_keys),
             created_at))

    def webhooks(self, account: str | None = None) -> list[WebhookRecord]:
        where, params = ("WHERE account = ?", (account,)) if account is not None else ("", ())
        rows = self._all(f"SELECT * FROM webhooks {where} ORDER BY account, company", params)
        return [WebhookRecord(r["account"], r["company"], r["url"], json.loads(r["ids"]), json.loads(r["secret_keys"]))
                for r in rows]

    def delete_webhook(self, account: str, company: str) -> None:
        self._exec("DELETE FROM webhooks WHERE account = ? AND company = ?", (account, company))

    def first_sighting(self, account: str, key: str, keep_seconds: float) -> bool:
        """Remember delivery ``key`` of ``account`` for ``keep_seconds``; False if it was seen already
        (a replay). Atomic across processes sharing the state (a primary key, not a read-then-write)."""
        now = time.time()
        self._exec("DELETE FROM webhook_seen WHERE expires_at < ?", (now,))
        return self._exec("INSERT INTO webhook_seen (account, key, expires_at) VALUES (?, ?, ?) "
                          "ON CONFLICT (account, key) DO NOTHING", (account, key, now + keep_seconds)) == 1
