"""The settings of a Billit account, and the two environments Billit runs.

Secrets (the API key, the OAuth token set, the OAuth client secret) are never settings: they
live in ``ctx.secrets`` under the names in ``SECRETS``.
"""

from __future__ import annotations

from typing import Literal, Self

from invoicesync import Settings
from invoicesync.http import DEFAULT_REDIRECT_URI, RedirectUri
from pydantic import Field, model_validator

OrderType = Literal["Invoice", "CreditNote", "Offer", "DeliveryNote", "OrderForm"]
OrderDirection = Literal["Income", "Cost"]

#: Billit's production and sandbox are separate worlds (own accounts, PartyIDs, keys, OAuth clients).
ENVIRONMENTS: dict[str, dict[str, str]] = {
    "production": {"api": "https://api.billit.be", "login": "https://my.billit.be"},
    "sandbox": {"api": "https://api.sandbox.billit.be", "login": "https://my.sandbox.billit.be"},
}

#: Requests in flight at once per account unless its ``max_in_flight`` setting says otherwise.
DEFAULT_MAX_IN_FLIGHT = 8

#: Billit's documented maximum (and default) page size for ``GET /v1/orders``.
MAX_PAGE_SIZE = 120

SECRETS = ("api_key", "oauth_token", "client_secret")


def _default_types() -> list[OrderType]:
    return ["Invoice", "CreditNote"]


def _default_directions() -> list[OrderDirection]:
    return ["Income", "Cost"]


class BillitSettings(Settings):
    #: ``production`` (api.billit.be) or ``sandbox`` (api.sandbox.billit.be). The one source of
    #: truth for the hosts; ``sandbox`` below is only a way of setting it.
    environment: Literal["production", "sandbox"] = "production"
    #: ``invoicesync connect billit --sandbox``: shorthand for ``environment = "sandbox"``. It is a
    #: setting (not a connect-only option) so the choice is stored with the account and every
    #: later sync talks to Billit's sandbox too.
    sandbox: bool = False
    #: ``oauth`` (Billit's login page; required for anything distributed) or ``api_key`` (personal use).
    auth: Literal["oauth", "api_key"] = "oauth"
    #: Override of the API base URL (``https://api.billit.be``), e.g. for a local emulator.
    api_url: str | None = None
    #: Override of the web-app host that serves ``/Account/Logon`` (``https://my.billit.be``).
    login_url: str | None = None
    #: The OAuth client id Billit support issued for this app (not secret); the secret is a secret.
    client_id: str | None = None
    #: The redirect URI registered with Billit support for ``client_id``, matched exactly. A
    #: loopback URI (sandbox only) is listened on at its port; an https page (production) means
    #: the user pastes the address the browser lands on. See the README.
    redirect_uri: RedirectUri = DEFAULT_REDIRECT_URI
    #: Which order types to import. Invoices and credit notes by default.
    order_types: list[OrderType] = Field(default_factory=_default_types, min_length=1)
    #: Income = sales, Cost = purchases. Both by default.
    directions: list[OrderDirection] = Field(default_factory=_default_directions, min_length=1)
    #: Orders per listing request; Billit never returns more than 120.
    page_size: int = Field(default=MAX_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    #: Re-read this many seconds before the stored cursor on each run (server commit lag). A cursor
    #: in the hour a DST fall-back repeats re-reads that hour anyway (Billit's timestamps carry no
    #: offset). Re-read orders are deduplicated by the library.
    lookback_seconds: int = Field(default=0, ge=0)
    #: An accountant acting for a client company sends its own company id as ``ContextPartyID``.
    context_party_id: int | None = None
    #: Also report soft-deleted orders (``GET /v1/orders/deleted``) as deletions.
    import_deletions: bool = True
    #: A CA bundle to trust (a TLS test server); core uses it as ``verify``.
    ca_bundle: str | None = None
    #: Requests in flight at once for this account (default 8); lower it if Billit answers 429.
    max_in_flight: int | None = Field(default=None, ge=1, le=64)


    @model_validator(mode="after")
    def _sandbox_selects_environment(self) -> Self:
        given = self.model_fields_set
        if "sandbox" in given and "environment" in given and self.sandbox != (self.environment == "sandbox"):
            raise ValueError(f"sandbox = {str(self.sandbox).lower()} contradicts environment = "
                             f"{self.environment!r}; set only one of them")
        if self.sandbox:
            self.environment = "sandbox"
        # Read back consistently whichever of the two was given.
        self.sandbox = self.environment == "sandbox"
        return self

    def api_base(self) -> str:
        if self.api_url:
            return self.api_url.rstrip("/")
        return ENVIRONMENTS[self.environment]["api"]

    def login_base(self) -> str:
        if self.login_url:
            return self.login_url.rstrip("/")
        return ENVIRONMENTS[self.environment]["login"]
