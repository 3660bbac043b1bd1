"""A local emulator of Microsoft Entra (client credentials) and the Business Central API v2.0.

Served over TLS (msal accepts only https authorities), e.g. ``invoicesync sandbox dynamics365``.
Tenant, app and data are generated; ``account_settings``/``account_secrets`` point an account at
it. Knobs for tests: ``page_size`` (server paging), ``rate_limit``/``rate_window``/``retry_after``
(429 throttling), ``document_attachments=False`` (an older tenant without that entity),
the fault action ``commit_then_status`` (the write happens, the answer is a 5xx),
``max_upload_bytes`` (350 MB, as BC online), ``lenient=[...]`` (waive one of BC's refusals, see
``LENIENCIES``; all are enforced by default), ``lcy_code_accepted=False`` (a service that
refuses the local currency's code, taking only a blank ``currencyCode`` for it),
``next_links="path"|"relative"`` (relative ``@odata.nextLink``s),
``Entra.apps`` (setup mistakes: unknown app, not registered in BC, missing permission), plus the
core fault injection (``add_fault``).
"""

from __future__ import annotations

import collections
import random
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from invoicesync.sandbox import Fault, Request, Response, SandboxApp

from ._bc import BcApi, BcError
from ._entra import Entra, EntraApp
from ._store import CompanyData, ContentStore

DEMO_TENANT = "3f8e6a52-0d0b-4c1f-9d55-6b1f5a0c7e21"
DEMO_DOMAIN = "invoicesync-demo.onmicrosoft.com"
DEMO_CLIENT_ID = "8b1d3c4e-2f6a-4e7b-9c0d-1a2b3c4d5e6f"
DEMO_SECRET = "sandbox-only-secret-not-real"
DEMO_COMPANY = "CRONUS BE Demo"

#: Fault action: serve the request (the write is committed), then answer ``status`` instead,
#: e.g. ``{"action": "commit_then_status", "status": 504, "method": "POST", "path": "/purchaseInvoices$"}``.
COMMIT_THEN_STATUS = "commit_then_status"
#: BC online's documented maximum upload size (operational limits).
MAX_UPLOAD_BYTES = 350 * 1024 * 1024
#: Refusals of real BC that a test may waive with ``lenient=[...]`` (each is strict by default):
#: a quoted company GUID, a fileName over 250 characters, an upload over ``max_upload_bytes``, an
#: ``attachmentContent`` sent as JSON, a ``$filter``/``$select`` naming a property the entity lacks,
#: comparing one with a literal of another type, or ``or`` across different properties.
LENIENCIES = ("quoted_guids", "file_name_length", "upload_size", "json_content", "untyped_filters")

_BASE = r"/v2\.0/(?P<tenant>[^/]+)/(?P<env>[^/]+)/api/v2\.0"
_COMPANY = _BASE + r"/companies\((?P<cid>[^)]+)\)"
_DOCS = r"(?P<set>purchaseInvoices|purchaseCreditMemos)"
_LINES = r"(?P<lines>purchaseInvoiceLines|purchaseCreditMemoLines)"
_ATT = r"(?P<att>attachments|documentAttachments)"
_ID = r"\((?P<id>[^)]+)\)"

_SUPPLIERS = [("Brouwerij De Klok NV", "BE0412.345.678"), ("Office Supplies BV", "NL 8123.45.678.B01"),
              ("Müller Logistik GmbH", "DE 123 456 789"), ("Café Léon SPRL", "BE0987.654.321"),
              ("Nordic Paper AB", "SE556677889901")]


class BusinessCentralSandbox(SandboxApp):
    name = "dynamics365"
    tls = True

    def __init__(self, *, tenant: str = DEMO_TENANT, domain: str = DEMO_DOMAIN,
                 environments: tuple[str, ...] = ("production", "sandbox"), page_size: int = 20000,
                 document_attachments: bool = True, rate_limit: int | None = None, rate_window: float = 300.0,
                 retry_after: float | None = None, token_lifetime: int = 3599,
                 content_dir: Path | None = None, lcy_code_accepted: bool = True,
                 next_links: str = "absolute", max_upload_bytes: int = MAX_UPLOAD_BYTES,
                 conflict_status: int = 412, lenient: Iterable[str] = ()) -> None:
        super().__init__()
        unknown = set(lenient) - set(LENIENCIES)
        if unknown:
            raise ValueError(f"unknown leniencies {sorted(unknown)}; known: {', '.join(LENIENCIES)}")
        #: The refusals of real BC (per the API notes) this sandbox waives; none unless asked.
        self.lenient = frozenset(lenient)
        self.max_upload_bytes = max_upload_bytes
        conflict_status = int(conflict_status)
        if conflict_status not in (409, 412):
            raise ValueError("conflict_status is 409 or 412")
        #: The status of a stale ``If-Match`` (``Request_EntityChanged``): BC documents the code, not
        #: the status, so a client must take either.
        self.conflict_status = conflict_status
        self.entra = Entra(tenant, domain, token_lifetime)
        self.entra.apps[DEMO_CLIENT_ID] = EntraApp(DEMO_CLIENT_ID, DEMO_SECRET)
        self.environments = set(environments)
        self.companies: dict[str, CompanyData] = {}
        self.page_size = page_size
        self.document_attachments = document_attachments
        #: Real BC takes the LCY code and stores it blank; some services only take the blank.
        self.lcy_code_accepted = lcy_code_accepted
        #: "absolute" (BC), "path" (host-relative) or "relative" (to the collection's own path).
        self.next_links = next_links
        #: Content-Type of every attachmentContent upload, for tests of what clients send.
        self.upload_content_types: list[str] = []
        #: Header PATCHes of purchase documents as received: (document id, If-Match, body).
        self.document_patches: list[tuple[str, str | None, dict[str, Any]]] = []
        self.rate_limit, self.rate_window, self.retry_after = rate_limit, rate_window, retry_after
        self.content = ContentStore(content_dir)
        #: The CA file clients must trust; whoever serves the app may set it (see ``account_settings``).
        self.ca_file: str | None = None
        self._calls: dict[str, collections.deque[float]] = {}
        self.api = BcApi(self)
        self._routes_entra()
        self._routes_bc()

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> BusinessCentralSandbox:
        known = {"page_size", "document_attachments", "rate_limit", "rate_window", "retry_after", "token_lifetime",
                 "lcy_code_accepted", "next_links", "max_upload_bytes", "conflict_status"}
        lenient = options.get("lenient") or ()
        app = cls(**{k: v for k, v in options.items() if k in known},
                  lenient=lenient.split(",") if isinstance(lenient, str) else lenient)
        app.seed(random.Random(options.get("seed", 1)))
        return app

    def seed(self, rng: random.Random) -> CompanyData:
        company = self.add_company(DEMO_COMPANY)
        for name, vat in rng.sample(_SUPPLIERS, len(_SUPPLIERS)):
            company.add_vendor(name, vat)
        return company

    def add_company(self, name: str, display_name: str = "") -> CompanyData:
        company = CompanyData(str(uuid.uuid4()), name, display_name)
        self.companies[company.id] = company
        return company

    # -- account wiring ------------------------------------------------------------------------

    def account_settings(self, base_url: str) -> dict[str, Any]:
        settings: dict[str, Any] = {
            "tenant": self.entra.tenant, "client_id": DEMO_CLIENT_ID, "environment": "production",
            "authority_host": base_url, "api_host": base_url,
            # The demo's documents come from suppliers this fresh tenant does not know yet.
            "create_missing_vendors": True,
        }
        if self.ca_file:  # otherwise the caller adds ca_bundle = running.ca_file (core's demo does)
            settings["ca_bundle"] = str(self.ca_file)
        return settings

    def account_secrets(self) -> dict[str, str]:
        return {"client_secret": DEMO_SECRET}

    def error(self, status: int, code: str, message: str, request: Request | None = None) -> Response:
        if code in {"TooManyRequests"}:
            code = "Application_TooManyRequests"
        elif code == "NotFound":
            code = "BadRequest_NotFound"
        elif code == "MethodNotAllowed":
            code = "BadRequest_MethodNotAllowed"
        elif code in {"InternalServerError", "ServiceUnavailable", "Error"}:
            code = "Internal_ServerError" if status < 503 else "Internal_TenantUnavailable"
        correlation = uuid.uuid4()
        return Response.json({"error": {"code": code, "message": f"{message}  CorrelationId:  {correlation}."}},
                             status)

    def company_by_name(self, name: str) -> CompanyData:
        return next(c for c in self.companies.values() if c.name == name)

    # -- routing -------------------------------------------------------------------------------

    def _routes_entra(self) -> None:
        entra = self.entra
        self.route("GET", r"/common/discovery/instance", entra.instance_discovery)
        self.route("GET", r"/(?P<tenant>[^/_]+)/v2\.0/\.well-known/openid-configuration", entra.openid_configuration)
        self.route("GET", r"/(?P<tenant>[^/_]+)/\.well-known/openid-configuration", entra.openid_configuration)
        self.route("POST", r"/(?P<tenant>[^/_]+)/oauth2/v2\.0/token", entra.token)

    def _routes_bc(self) -> None:
        api = self.api
        table: list[tuple[str, str, Callable[..., Response]]] = [
            ("GET", _COMPANY, api.company),
            ("GET", _COMPANY + r"/vendors", api.vendors), ("POST", _COMPANY + r"/vendors", api.create_vendor),
            ("GET", _COMPANY + r"/vendors" + _ID, api.vendor),
            ("GET", _COMPANY + "/" + _DOCS, api.documents), ("POST", _COMPANY + "/" + _DOCS, api.create_document),
            ("GET", _COMPANY + "/" + _DOCS + _ID, api.document),
            ("DELETE", _COMPANY + "/" + _DOCS + _ID, api.delete_document),
            ("PATCH", _COMPANY + "/" + _DOCS + _ID, api.update_document),
            ("POST", _COMPANY + "/" + _DOCS + _ID + r"/Microsoft\.NAV\.post", api.post_document),
            ("GET", _COMPANY + "/" + _DOCS + _ID + "/" + _LINES, api.lines),
            ("POST", _COMPANY + "/" + _DOCS + _ID + "/" + _LINES, api.create_line),
            ("PATCH", _COMPANY + "/" + _DOCS + _ID + "/" + _LINES + r"\((?P<line>[^)]+)\)", api.update_line),
            ("GET", _COMPANY + "/" + _DOCS + _ID + "/" + _ATT, api.attachments),
            ("GET", _COMPANY + "/" + _ATT, api.attachments), ("POST", _COMPANY + "/" + _ATT, api.create_attachment),
            ("GET", _COMPANY + "/" + _ATT + _ID, api.attachment),
            ("DELETE", _COMPANY + "/" + _ATT + _ID, api.delete_attachment),
            ("GET", _COMPANY + "/" + _ATT + _ID + r"/attachmentContent", api.download_content),
            ("PATCH", _COMPANY + "/" + _ATT + _ID + r"/attachmentContent", api.upload_content),
        ]
        self.route("GET", _BASE + r"/companies", self._guard(lambda request, _: api.companies(request), company=False))
        for method, pattern, handler in table:
            self.route(method, pattern, self._guard(handler))

    def _guard(self, handler: Callable[..., Response], *, company: bool = True) -> Callable[[Request], Response]:
        """What BC checks before any handler: the token, the app's BC setup, the limit, the path."""

        def guarded(request: Request) -> Response:
            try:
                return handler(request, self._authorise(request, company))
            except BcError as exc:
                return self.error(exc.status, exc.code, exc.message, request)

        return guarded

    def _authorise(self, request: Request, need_company: bool) -> CompanyData | None:
        token = self.entra.check(request.headers.get("authorization"))
        if token is None:
            raise BcError(401, "Authentication_InvalidCredentials", "The credentials provided are incorrect")
        app = self.entra.apps.get(token.client_id)
        if app is None or not app.registered_in_bc:
            raise BcError(401, "Authentication_InvalidCredentials", "The server has rejected the client credentials.")
        if "API.ReadWrite.All" not in token.roles:
            raise BcError(403, "Authorization_InsufficientPermissions",
                          "The app has no permission to access Business Central APIs (API.ReadWrite.All).")
        self._throttle(token.client_id)
        if not self.entra.knows_tenant(request.params["tenant"]):
            raise BcError(404, "BadRequest_NotFound", f"Tenant {request.params['tenant']} does not exist.")
        if request.params["env"] not in self.environments:
            raise BcError(404, "BadRequest_NotFound", f"Environment '{request.params['env']}' does not exist.")
        if request.params.get("att") == "documentAttachments" and not self.document_attachments:
            raise BcError(404, "BadRequest_NotFound", "No HTTP resource was found that matches the request URI.")
        if not need_company:
            return None
        cid = request.params["cid"]
        if cid.startswith("'") and "quoted_guids" not in self.lenient:
            # BC writes the company GUID bare in the key: companies(<guid>), never companies('<guid>').
            raise BcError(400, "BadRequest", f"Cannot convert the literal {cid} to the expected type 'Edm.Guid'.")
        company = self.companies.get(cid.strip("'").lower())
        if company is None:
            raise BcError(404, "Internal_CompanyNotFound", f"Cannot find company {request.params['cid']}.")
        return company

    def _throttle(self, client_id: str) -> None:
        if self.rate_limit is None:
            return
        with self.lock:
            calls = self._calls.setdefault(client_id, collections.deque())
            moment = time.monotonic()
            while calls and calls[0] <= moment - self.rate_window:
                calls.popleft()
            if len(calls) >= self.rate_limit:
                raise _TooManyError(self.retry_after)
            calls.append(moment)

    def _fire(self, request: Request) -> Fault | None:
        fault = super()._fire(request)
        if fault is not None and fault.action == COMMIT_THEN_STATUS:
            # Not a fault before handling: the request is served (the write happens), and only
            # its answer is replaced, in ``handle``.
            request.commit_fault = fault  # type: ignore[attr-defined]
            return None
        return fault

    def handle(self, request: Request) -> Response:
        try:
            response = super().handle(request)
        except _TooManyError as exc:
            response = self.error(429, "Application_TooManyRequests",
                                  f"Too many requests reached. Maximum ({self.rate_limit}).", request)
            if exc.retry_after is not None:
                response.headers["Retry-After"] = f"{exc.retry_after:g}"
            self._log(request, 429)
            return response
        fault = getattr(request, "commit_fault", None)
        if fault is not None and response.status < 400:
            # What a gateway timeout after the commit looks like: the record exists, the answer says 5xx.
            response = self.error(fault.status, fault.code or "Internal_ServerError", "injected fault after commit",
                                  request)
        return response


class _TooManyError(Exception):
    def __init__(self, retry_after: float | None) -> None:
        super().__init__("too many requests")
        self.retry_after = retry_after


__all__ = ["COMMIT_THEN_STATUS", "DEMO_CLIENT_ID", "DEMO_SECRET", "DEMO_TENANT", "LENIENCIES", "MAX_UPLOAD_BYTES",
           "BusinessCentralSandbox", "EntraApp"]
