"""The settings of a Billit account, and the two environments Billit runs.

Secrets (the API key, the OAuth token set, the OAuth client secret) are never settings: they
live in ``ctx.secrets`` under the names in ``SECRETS``.
"""

from __future__ import annotations

from typing import Literal

from invoicesync import Settings
from pydantic import Field

OrderType = Literal["Invoice", "CreditNote", "Offer", "DeliveryNote", "OrderForm"]
OrderDirection = Literal["Income", "Cost"]

#: Billit's production and sandbox are separate worlds (own accounts, PartyIDs, keys, OAuth clients).
ENVIRONMENTS: dict[str, dict[str, str]] = {
    "production": {"api": "https://api.billit.be", "login": "https://my.billit.be"},
    "sandbox": {"api": "https://api.sandbox.billit.be", "login": "https://my.sandbox.billit.be"},
}

#: Billit's documented maximum (and default) page size for ``GET /v1/orders``.
MAX_PAGE_SIZE = 120

SECRETS = ("api_key", "oauth_token", "client_secret")


def _default_types() -> list[OrderType]:
    return ["Invoice", "CreditNote"]


def _default_directions() -> list[OrderDirection]:
    return ["Income", "Cost"]


class BillitSettings(Settings):
    #: ``production`` (api.billit.be) or ``sandbox`` (api.sandbox.billit.be).
    environment: Literal["production", "sandbox"] = "production"
    #: ``oauth`` (Billit's login page; required for anything distributed) or ``api_key`` (personal use).
    auth: Literal["oauth", "api_key"] = "oauth"
    #: Override of the API base URL (``https://api.billit.be``), e.g. for a local emulator.
    api_url: str | None = None
    #: Override of the web-app host that serves ``/Account/Logon`` (``https://my.billit.be``).
    login_url: str | None = None
    #: The OAuth client id Billit support issued for this app (not secret); the secret is a secret.
    client_id: str | None = None
    #: Which order types to import. Invoices and credit notes by default.
    order_types: list[OrderType] = Field(default_factory=_default_types, min_length=1)
    #: Income = sales, Cost = purchases. Both by default.
    directions: list[OrderDirection] = Field(default_factory=_default_directions, min_length=1)
    #: Orders per listing request; Billit never returns more than 120.
    page_size: int = Field(MAX_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    #: Re-read this many seconds before the stored cursor on each run (server commit lag, DST
    #: fall-back: Billit's timestamps carry no offset). Re-read orders are deduplicated by the library.
    lookback_seconds: int = Field(0, ge=0)
    #: An accountant acting for a client company sends its own company id as ``ContextPartyID``.
    context_party_id: int | None = None
    #: Also report soft-deleted orders (``GET /v1/orders/deleted``) as deletions.
    import_deletions: bool = True
    #: A CA bundle to trust (a TLS test server); core uses it as ``verify``.
    ca_bundle: str | None = None

    def api_base(self, environment: str | None = None) -> str:
        if self.api_url:
            return self.api_url.rstrip("/")
        return ENVIRONMENTS[environment or self.environment]["api"]

    def login_base(self, environment: str | None = None) -> str:
        if self.login_url:
            return self.login_url.rstrip("/")
        return ENVIRONMENTS[environment or self.environment]["login"]
