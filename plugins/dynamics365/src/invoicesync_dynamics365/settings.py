"""The account settings of a Business Central target. The client secret is never a setting."""

from __future__ import annotations

from typing import Literal

from invoicesync import Settings
from pydantic import Field

#: The application scope that asks Entra for a token carrying the app's BC permissions.
BC_SCOPE = "https://api.businesscentral.dynamics.com/.default"
SECRET_KEY = "client_secret"


class Dynamics365Settings(Settings):
    tenant: str = Field(description="Entra tenant id (GUID) or domain, e.g. contoso.onmicrosoft.com")
    client_id: str = Field(description="Application (client) id of the Entra app registration")
    environment: str = Field("production", description="Business Central environment name (production, sandbox…)")
    company_id: str | None = Field(None, description="Company GUID; default: the company chosen at connect")
    authority_host: str = Field("https://login.microsoftonline.com", description="Entra login host (https)")
    api_host: str = Field("https://api.businesscentral.dynamics.com", description="Business Central API host")
    scope: str = Field(BC_SCOPE, description="OAuth scope requested for the client-credentials token")
    attachment_entity: Literal["documentAttachments", "attachments"] = Field(
        "documentAttachments",
        description="documentAttachments (the Attachments FactBox) or attachments (Incoming Document); "
        "documentAttachments falls back to attachments when the tenant lacks it",
    )
    local_currency: str | None = Field(
        None, description="The company's local currency (LCY), e.g. EUR: sent as a blank currencyCode, which is "
        "how BC means it. Optional: learnt by itself when BC refuses the code",
    )
    attach_ubl: bool = Field(True, description="Attach the UBL XML too, when the document has one")
    create_missing_vendors: bool = Field(False, description="Create a vendor when none matches (off: fail)")
    lines: Literal["none", "comment"] = Field(
        "none", description="none: header only; comment: one Comment line summarising the totals"
    )
    on_delete: Literal["delete", "keep"] = Field(
        "delete", description="A document deleted at the source: delete its draft if unposted and unchanged "
        "since export (delete), or leave Business Central as it is (keep)",
    )
    ca_bundle: str | None = Field(None, description="CA file to trust (a local sandbox's throw-away CA)")
    timeout: float = Field(60.0, description="Seconds to wait for one API answer")

    @property
    def authority(self) -> str:
        return f"{self.authority_host.rstrip('/')}/{self.tenant}"

    @property
    def api_base(self) -> str:
        """The v2.0 API root with the tenant in the path, as service-to-service tokens need."""
        return f"{self.api_host.rstrip('/')}/v2.0/{self.tenant}/{self.environment}/api/v2.0"
