"""``BillitSandbox``: a local emulator of Billit's API, login page and token endpoint.

Routes: ``GET /v1/account/accountInformation``, ``GET /v1/orders`` (OData ``$filter`` on the
whitelist, ``$orderby``, ``$top`` capped at 120, ``$skip``, ``$inlinecount``, ``fullTextSearch``,
``NextPageLink``), ``GET /v1/orders/{id}``, ``GET /v1/orders/deleted``, ``GET /v1/files/{id}``
(JSON with base64 ``FileContent``, streamed), ``GET|POST /Account/Logon``, ``POST /OAuth2/token``,
``POST /OAuth2/revoke``, ``GET|POST /v1/webhooks``, ``DELETE /v1/webhooks/{id}``,
``POST /v1/webhooks/refresh/{id}`` (signed deliveries when orders change: ``webhooks``).
Errors are ``{"errors": [{"Code", "Description"}]}``. Admin helpers (Python and
``/__sandbox__/...``) edit and delete orders and expire tokens; faults come from core's ``Fault``
machinery (429 + Retry-After, 500, delay, dropped connections, and ``status=401,code=AccessTokenExpired``
for an early token expiry).
"""

from __future__ import annotations

import base64
import re
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

from invoicesync.sandbox import Request, Response, SandboxApp

from .admin import OrderAdmin
from .corpus import OMIT, BadInputs, file_json_body
from .data import CompanyData, Seeder, StoredFile, attach_files, summary
from .login import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_USER, LoginPages
from .oauth import OAuthClient, OAuthState
from .odata import ODataError, parse_filter, sort_orders
from .webhooks import WebhookHub
from .wire_json import dumps

PAGE_SIZE = 120
DEMO_API_KEY = "sandbox-demo-api-key-0f6c1e"


def _json(data: Any, status: int = 200) -> Response:
    """A JSON answer with amounts written the way Billit writes them (``864.00``)."""
    return Response(status, dumps(data), {"Content-Type": "application/json; charset=utf-8"})


def _wire(order: dict[str, Any], garbled: dict[str, Any] | None = None) -> dict[str, Any]:
    """Drop emulator-private keys and nulls (Billit omits null fields); then garble what a
    bad-input test asks for (``OMIT`` drops a field), on the wire only: the stored order still
    filters and sorts by its real values, as a server with a serialisation bug would."""
    wire = {k: v for k, v in order.items() if not k.startswith("_") and v is not None}
    for key, value in (garbled or {}).items():
        if value is OMIT:
            wire.pop(key, None)
        else:
            wire[key] = value
    return wire


class BillitSandbox(WebhookHub, LoginPages, OrderAdmin, SandboxApp):
    name = "billit"

    def __init__(self, *, documents: int = 50, seed: int = 1, companies: int = 2,
                 token_lifetime: float = 3600.0, bad_inputs: bool = False) -> None:
        super().__init__()
        self._init_webhooks()  # /v1/webhooks and signed deliveries (see ``webhooks``); before any edit
        self.seeder = Seeder(seed)
        self.data_lock = threading.RLock()
        self.companies: list[CompanyData] = [self.seeder.company(i) for i in range(max(1, companies))]
        self.files: dict[str, StoredFile] = {}
        self.api_keys = {DEMO_API_KEY}
        self.unreachable: set[int] = set()  # PartyIDs the user lost access to
        self.order_queries: list[dict[str, str]] = []  # query options of each GET /v1/orders
        self.raw_order_queries: list[str] = []  # the same, as sent on the wire
        #: The Billit headers of each API request (Accept, PartyID, ContextPartyID, credentials).
        self.api_headers: list[dict[str, str | None]] = []
        # Variants of what Billit leaves undocumented, for tolerance tests: the list shape
        # ("envelope" as the docs show, or "bare" as the Swagger declares: an array, no links),
        # the NextPageLink form ("absolute", "relative" path+query, "foreign": absolute on another
        # origin, as a server behind a proxy may write it, "none", "loop": a broken server whose
        # every link points back to the first page), and a server that takes only
        # the documented date-only DateTime literal.
        self.list_shape = "envelope"
        self.next_links = "absolute"
        self.date_only_literals = False
        #: Edits racing the listing: after each page of ``GET /v1/orders`` one order it listed is
        #: edited (LastModified bumped to now, as a user at work would), this many times in all.
        self.racing_edits = 0
        #: OData as forgiving as a naive emulator (any keyword case, literals of any type,
        #: DateTime with an offset); Billit's own is strict (see ``odata``), and so is the default.
        self.lenient_odata = False
        #: "json" (documented: File object with base64 FileContent) or "raw" (the bytes themselves).
        self.file_shape = "json"
        #: Called with each request for an order or a file as it arrives, before it is answered
        #: (tests hold requests there to see which ones are in flight together).
        self.arrival_hooks: list[Callable[[Request], None]] = []
        self.oauth = OAuthState(clients=[OAuthClient(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)],
                                users={DEMO_USER[0]: DEMO_USER[1]}, token_lifetime=token_lifetime)
        self._last_stamp = datetime(2025, 1, 1)
        for company in self.companies:
            self._seed(company, documents)
        #: The bad-input corpus (``bad_inputs``): its defects, and ``fix()`` to repair them.
        self.bad_inputs = BadInputs(self).seed() if bad_inputs else None
        self.route("GET", r"/v1/account/accountInformation", self._account_information)
        self.route("GET", r"/v1/orders", self._orders)
        self.route("GET", r"/v1/orders/deleted", self._deleted)
        self.route("GET", r"/v1/orders/(?P<order_id>-?\d+)", self._order)
        self.route("GET", r"/v1/files/(?P<file_id>[^/]+)", self._file)
        self._init_login()  # /Account/Logon, /OAuth2/token and /OAuth2/revoke (see ``login``)
        self._init_admin_routes()  # /__sandbox__/orders/{id}: edit and delete (see ``admin``)

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> BillitSandbox:
        app = cls(documents=int(options.get("documents") or options.get("orders") or 50),
                  seed=int(options.get("seed") or 1), companies=int(options.get("companies") or 2),
                  token_lifetime=float(options.get("token_lifetime") or 3600.0),
                  bad_inputs=_flag(options.get("bad_inputs")))
        app.lenient_odata = _flag(options.get("lenient_odata"))
        app.oauth.configure_redirects(options)  # redirect_uris, lenient_redirects
        if options.get("webhook_ca"):  # a webhook receiver's own CA (a dashboard with a test certificate)
            app.webhook_verify = str(options["webhook_ca"])
        for fault in options.get("faults") or []:
            app.add_fault(fault)
        return app

    # -- what core asks of a sandbox -----------------------------------------------------------

    def error(self, status: int, code: str, message: str, request: Request | None = None) -> Response:
        return Response.json({"errors": [{"Code": code, "Description": message}]}, status)

    def account_settings(self, base_url: str) -> dict[str, Any]:
        return {"environment": "sandbox", "auth": "api_key", "api_url": base_url, "login_url": base_url}

    def account_secrets(self) -> dict[str, str]:
        return {"api_key": DEMO_API_KEY}

    def oauth_settings(self, base_url: str) -> dict[str, Any]:
        """Settings for an OAuth account against this sandbox (its secret: ``DEMO_CLIENT_SECRET``)."""
        return {"environment": "sandbox", "auth": "oauth", "api_url": base_url, "login_url": base_url,
                "client_id": DEMO_CLIENT_ID,
                "redirect_uri": self.oauth.clients[DEMO_CLIENT_ID].redirects.register_free_loopback()}

    # -- seeding and admin helpers -------------------------------------------------------------

    def _seed(self, company: CompanyData, count: int) -> None:
        start = datetime(2025, 1, 6, 8, 0) + timedelta(minutes=company.party_id % 97)
        for number, moment in enumerate(self.seeder.times(count, start), start=1):
            order = self.seeder.order(company, moment, number)
            attach_files(order, self.files, self.seeder, extra_attachment=self.seeder.rng.random() < 0.04)
            company.orders[order["OrderID"]] = order
            self._last_stamp = max(self._last_stamp, moment)

    # -- authentication and company selection ------------------------------------------------

    def _authenticate(self, request: Request) -> Response | None:
        with self.data_lock:
            self.api_headers.append({name: request.headers.get(name) for name in
                                     ("accept", "partyid", "contextpartyid", "apikey", "authorization")})
        key = request.headers.get("apikey")
        if key is not None:
            if key in self.api_keys:
                return None
            return self.error(401, "InvalidApiKey", "The API key is not valid.")
        authorization = request.headers.get("authorization") or ""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return self.error(401, "Unauthorized", "Send an ApiKey header or an OAuth Bearer token.")
        problem = self.oauth.check_bearer(token.strip())
        return None if problem is None else self.error(401, problem, "")

    def _party(self, request: Request) -> CompanyData | Response:
        raw = request.headers.get("partyid")
        if raw is None or not raw.strip():
            reachable = [c for c in self.companies if c.party_id not in self.unreachable]
            if not reachable:
                return self.error(401, "Unauthorized", "No company is linked to this login.")
            return min(reachable, key=lambda c: c.party["Created"])  # Billit: the oldest company
        try:
            company = self.company(int(raw.strip()))
        except (ValueError, StopIteration):
            return self.error(401, "Unauthorized", f"You have no access to party {raw.strip()}.")
        if company.party_id in self.unreachable:
            return self.error(401, "Unauthorized", f"You have no access to party {company.party_id}.")
        return company

    def _company_for(self, request: Request) -> CompanyData | Response:
        denied = self._authenticate(request)
        return denied if denied is not None else self._party(request)

    # -- API routes ----------------------------------------------------------------------------

    def _account_information(self, request: Request) -> Response:
        denied = self._authenticate(request)
        if denied is not None:
            return denied
        companies = [c.party for c in self.companies if c.party_id not in self.unreachable]
        return Response.json({"Email": DEMO_USER[0], "FirstName": "Demo", "LastName": "User",
                              "Companies": companies,
                              "UserCompanyRoles": [{"PartyID": c["PartyID"], "UserRoleTypes": ["Admin"]}
                                                   for c in companies]})

    def _page(self, request: Request, rows: list[dict[str, Any]], path: str,
              served: list[dict[str, Any]] | None = None) -> Response:
        if self.date_only_literals and re.search(r"[Dd]ate[Tt]ime'[^']*T", request.arg("$filter") or ""):
            return self.error(400, "GenericError", "The DateTime literal must be a date.")
        try:
            rows = [r for r in rows if parse_filter(request.arg("$filter"), strict=not self.lenient_odata)(r)]
            search = (request.arg("fullTextSearch") or "").strip().lower()
            if search:
                rows = [r for r in rows if search in dumps(summary(r)).decode().lower()]
            rows = sort_orders(rows, request.arg("$orderby"), strict=not self.lenient_odata)
            top = min(int(request.arg("$top") or PAGE_SIZE), PAGE_SIZE)
            skip = int(request.arg("$skip") or 0)
            if top < 0 or skip < 0:
                raise ODataError("$top and $skip must not be negative.")
        except ODataError as exc:
            return self.error(400, "GenericError", str(exc))
        except ValueError:
            return self.error(400, "GenericError", "$top and $skip must be integers.")
        page = rows[skip:skip + top]
        if served is not None:
            served.extend(page)
        items = [_wire(summary(r), r.get("_garbled_in_list")) for r in page]
        if self.list_shape == "bare":
            return _json(items)
        body: dict[str, Any] = {"Items": items, "NextPageLink": None, "Count": None}
        if self.next_links == "loop":  # a broken server: every page links back to the first
            first = {k: v[0] for k, v in request.query.items() if k != "$skip"}
            body["NextPageLink"] = request.base_url + f"{path}?{urllib.parse.urlencode(first, safe='$,/')}"
            return _json(body)
        if skip + top < len(rows) and top > 0 and self.next_links != "none":
            query = {k: v[0] for k, v in request.query.items()}
            query["$skip"] = str(skip + top)
            query["$top"] = str(top)
            link = f"{path}?{urllib.parse.urlencode(query, safe='$,/')}"
            body["NextPageLink"] = {
                "absolute": request.base_url + link,
                "relative": link,  # /v1/orders?...
                "relative-path": link.rsplit("/", 1)[1],  # orders?... (relative to the page's URL)
                "foreign": "http://billit-internal.invalid:8080" + link,
            }[self.next_links]
        if (request.arg("$inlinecount") or "").lower() == "allpages":
            body["Count"] = len(rows)
        return _json(body)

    def _orders(self, request: Request) -> Response:
        company = self._company_for(request)
        if isinstance(company, Response):
            return company
        with self.data_lock:
            rows = list(company.orders.values())
            self.order_queries.append({k: v[0] for k, v in request.query.items()})
            self.raw_order_queries.append(request.query_string)
        served: list[dict[str, Any]] = []
        response = self._page(request, rows, "/v1/orders", served)
        with self.data_lock:
            racing = served[:1] if self.racing_edits > 0 else []
            self.racing_edits -= len(racing)
        for order in racing:
            # Someone works in Billit while the client pages: a listed order moves to the end.
            self.edit_order(order["OrderID"], regenerate=False)
        return response

    def _deleted(self, request: Request) -> Response:
        company = self._company_for(request)
        if isinstance(company, Response):
            return company
        with self.data_lock:
            rows = list(company.deleted.values())
        return self._page(request, rows, "/v1/orders/deleted")

    def _arrived(self, request: Request) -> None:
        for hook in list(self.arrival_hooks):
            hook(request)

    def _order(self, request: Request) -> Response:
        self._arrived(request)
        company = self._company_for(request)
        if isinstance(company, Response):
            return company
        with self.data_lock:
            order = company.orders.get(int(request.params["order_id"]))
            body = dumps(_wire(order, order.get("_garbled"))) if order is not None else None
        if body is None:  # Billit answers an unknown or foreign OrderID with 401
            return self.error(401, "Unauthorized", f"You have no access to order {request.params['order_id']}.")
        return Response(200, body, {"Content-Type": "application/json; charset=utf-8"})

    def _file(self, request: Request) -> Response:
        self._arrived(request)
        company = self._company_for(request)
        if isinstance(company, Response):
            return company
        file_id = request.params["file_id"]
        with self.data_lock:
            stored = self.files.get(file_id.lower())
            owned = stored is not None and stored.order_id in company.orders
        if stored is None or not owned:
            return self.error(401, "Unauthorized", f"You have no access to file {file_id}.")
        if stored.damage:
            return Response(200, file_json_body(stored), {"Content-Type": "application/json; charset=utf-8"})
        if self.file_shape == "raw":
            return Response(200, _chunks(stored.render()), {"Content-Type": stored.mime})
        return Response(200, self._file_json(stored), {"Content-Type": "application/json; charset=utf-8"})

    @staticmethod
    def _file_json(stored: StoredFile) -> Iterator[bytes]:
        """The File object, with FileContent base64-encoded on the fly in 3-byte-aligned pieces."""
        head = {"FileID": stored.file_id, "FileName": stored.name, "MimeType": stored.mime}
        yield dumps(head)[:-1] + b',"FileContent":"'
        carry = b""
        for chunk in _chunks(stored.render()):
            data = carry + chunk
            usable = len(data) - len(data) % 3
            carry = data[usable:]
            if usable:
                yield base64.b64encode(data[:usable])
        yield base64.b64encode(carry) + b'"}'


def _flag(value: Any) -> bool:
    """An on/off option as a CLI or a TOML file gives it."""
    return str(value).strip().lower() in ("1", "true", "yes", "on") if value is not None else False


def _chunks(parts: Iterable[bytes]) -> Iterator[bytes]:
    for part in parts:
        if part:
            yield part
