"""Business Central API v2.0 handlers: companies, vendors, purchase documents and their lines
(attachments: ``_bc_attachments``; the request rules they share: ``_bc_rules``)."""

from __future__ import annotations

import json
import uuid
from datetime import date
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from invoicesync.sandbox import Request, Response

from ._bc_attachments import AttachmentsApi
from ._bc_rules import BcError, check_if_match, edm_date, known_fields, max_length, request_object
from ._odata import FilterError, check_select, compile_filter, select
from ._schema import ENTITY_SETS
from ._store import DOCUMENT_SETS, CompanyData, new_etag, now

if TYPE_CHECKING:
    from . import BusinessCentralSandbox

JSON_TYPE = "application/json; odata.metadata=minimal; odata.streaming=true"
_DOCUMENT_FIELDS = {
    "purchaseInvoices": {"vendorId", "vendorNumber", "vendorInvoiceNumber", "invoiceDate", "postingDate", "dueDate",
                         "currencyCode", "currencyId", "payToVendorId", "payToVendorNumber", "shortcutDimension1Code",
                         "shortcutDimension2Code", "purchaser", "discountAmount", "discountAppliedBeforeTax",
                         "pricesIncludeTax", "purchaseInvoiceLines"},
    "purchaseCreditMemos": {"vendorId", "vendorNumber", "vendorCreditMemoNumber", "creditMemoDate", "postingDate",
                            "dueDate", "currencyCode", "currencyId", "payToVendorId", "payToVendorNumber",
                            "shortcutDimension1Code", "shortcutDimension2Code", "purchaser", "discountAmount",
                            "discountAppliedBeforeTax", "pricesIncludeTax", "invoiceId", "invoiceNumber"},
}
_LINE_FIELDS = {"sequence", "lineType", "lineObjectNumber", "accountId", "itemId", "description", "unitOfMeasureCode",
                "unitCost", "quantity", "discountAmount", "discountPercent", "taxCode", "locationId",
                "itemVariantId", "expectedReceiptDate", "description2"}
_LINE_TYPES = {"Comment", "Account", "Item", "Resource", "Fixed Asset", "Charge"}
_VENDOR_FIELDS = {"number", "displayName", "addressLine1", "addressLine2", "city", "state", "country",
                  "postalCode", "phoneNumber", "email", "website", "taxRegistrationNumber", "currencyCode",
                  "irs1099Code", "paymentTermsId", "paymentMethodId", "taxLiable", "blocked"}


class BcApi(AttachmentsApi):
    """Handlers take ``(request, company)``; the sandbox checks token, throttle and company first."""

    def __init__(self, sandbox: BusinessCentralSandbox) -> None:
        self.sandbox = sandbox

    # -- responses -----------------------------------------------------------------------------

    def collection(self, request: Request, items: list[dict[str, Any]], context: str) -> Response:
        # Typed against the entity set the context names (its last segment), unless waived.
        type_name, schema = ENTITY_SETS[context.rsplit("/", 1)[-1]]
        typed = None if "untyped_filters" in self.sandbox.lenient else schema
        try:
            predicate = compile_filter(request.arg("$filter") or "", typed, type_name) \
                if request.arg("$filter") else None
            if typed is not None and request.arg("$select"):
                check_select(request.arg("$select") or "", typed, type_name)
        except FilterError as exc:
            raise BcError(400, "BadRequest", str(exc)) from None
        selected = [e for e in items if predicate is None or predicate(e)]
        skip, top = _count(request, "$skip"), request.arg("$top")
        selected = selected[skip:]
        if top is not None:
            selected = selected[:_count(request, "$top")]
        offset = _count(request, "$skiptoken")
        page_size = self.sandbox.page_size
        page = selected[offset:offset + page_size]
        body: dict[str, Any] = {"@odata.context": f"{self._root(request)}/$metadata#{context}",
                                "value": [select(e, request.arg("$select")) for e in page]}
        if offset + page_size < len(selected):
            params = [(k, v[0]) for k, v in request.query.items() if k != "$skiptoken"]
            params.append(("$skiptoken", str(offset + page_size)))
            query = "&".join(f"{quote(k, safe='$')}={quote(v, safe=chr(39) + '(),:$')}" for k, v in params)
            link = {"absolute": f"{request.base_url}{request.raw_path}", "path": request.raw_path,
                    "relative": request.raw_path.rsplit("/", 1)[-1]}[self.sandbox.next_links]
            body["@odata.nextLink"] = f"{link}?{query}"
        return Response(200, json.dumps(body).encode(), {"Content-Type": JSON_TYPE, "OData-Version": "4.0"})

    def entity(self, request: Request, entity: dict[str, Any], context: str, status: int = 200) -> Response:
        body = {"@odata.context": f"{self._root(request)}/$metadata#{context}/$entity", **entity}
        return Response(status, json.dumps(body).encode(),
                        {"Content-Type": JSON_TYPE, "OData-Version": "4.0", "ETag": entity.get("@odata.etag", "")})

    def _root(self, request: Request) -> str:
        return f"{request.base_url}/v2.0/{request.params['tenant']}/{request.params['env']}/api/v2.0"

    # -- companies and vendors -------------------------------------------------------------------

    def companies(self, request: Request) -> Response:
        return self.collection(request, [c.company_json() for c in self.sandbox.companies.values()], "companies")

    def company(self, request: Request, company: CompanyData) -> Response:
        return self.entity(request, company.company_json(), "companies")

    def vendors(self, request: Request, company: CompanyData) -> Response:
        return self.collection(request, list(company.vendors.values()), f"companies({company.id})/vendors")

    def vendor(self, request: Request, company: CompanyData) -> Response:
        return self.entity(request, self._vendor(company, request.params["id"]), f"companies({company.id})/vendors")

    def create_vendor(self, request: Request, company: CompanyData) -> Response:
        body = request_object(request)
        known_fields(body, _VENDOR_FIELDS, "vendor")
        name = str(body.get("displayName", ""))
        max_length(name, 100, "displayName")
        number = body.get("number")
        if number and company.vendor_by(number=number):
            raise BcError(400, "Internal_EntityWithSameKeyExists",
                          "The record in table Vendor already exists. "
                          f"Identification fields and values: No.='{number}'")
        vendor = company.add_vendor(name, str(body.get("taxRegistrationNumber", "")), number)
        vendor.update({k: v for k, v in body.items() if k in _VENDOR_FIELDS and k != "number"})
        return self.entity(request, vendor, f"companies({company.id})/vendors", 201)

    def _vendor(self, company: CompanyData, vendor_id: str) -> dict[str, Any]:
        vendor = company.vendor_by(id=vendor_id)
        if vendor is None:
            raise BcError(404, "Internal_RecordNotFound", f"The Vendor does not exist. Identification fields and "
                                                           f"values: Id='{vendor_id}'")
        return vendor

    # -- purchase documents ------------------------------------------------------------------------

    def documents(self, request: Request, company: CompanyData) -> Response:
        entity_set = request.params["set"]
        return self.collection(request, list(company.documents[entity_set].values()),
                               f"companies({company.id})/{entity_set}")

    def document(self, request: Request, company: CompanyData) -> Response:
        entity_set = request.params["set"]
        return self.entity(request, self._document(company, entity_set, request.params["id"]),
                           f"companies({company.id})/{entity_set}")

    def create_document(self, request: Request, company: CompanyData) -> Response:
        entity_set = request.params["set"]
        lines_set, number_field, date_field, _ = DOCUMENT_SETS[entity_set]
        body = request_object(request)
        known_fields(body, _DOCUMENT_FIELDS[entity_set], entity_set[:-1])
        vendor = self._document_vendor(company, body)
        vendor_number = str(body.get(number_field, ""))
        max_length(vendor_number, 35, number_field)
        currency = str(body.get("currencyCode", "") or "")
        known = company.currencies | ({company.local_currency} if self.sandbox.lcy_code_accepted else set())
        if currency and currency not in known:
            raise BcError(400, "Internal_InvalidTableRelation",
                          f"The field Currency Code of table Purchase Header contains a value ({currency}) that "
                          "cannot be found in the related table (Currency).")
        today = date.today().isoformat()
        document = {
            "@odata.etag": new_etag(), "id": str(uuid.uuid4()),
            "number": company.next_number(entity_set, "PI-" if entity_set == "purchaseInvoices" else "PCM-"),
            date_field: edm_date(body.get(date_field) or today, date_field), "postingDate":
                edm_date(body.get("postingDate") or body.get(date_field) or today, "postingDate"),
            "dueDate": edm_date(body.get("dueDate") or body.get(date_field) or today, "dueDate"),
            number_field: vendor_number, "vendorId": vendor["id"], "vendorNumber": vendor["number"],
            "vendorName": vendor["displayName"], "payToVendorId": vendor["id"], "payToVendorNumber": vendor["number"],
            "currencyId": "00000000-0000-0000-0000-000000000000", "currencyCode": currency or company.local_currency,
            "pricesIncludeTax": False, "discountAmount": 0, "totalAmountExcludingTax": 0, "totalTaxAmount": 0,
            "totalAmountIncludingTax": 0, "status": "Draft", "lastModifiedDateTime": now(),
        }
        company.documents[entity_set][document["id"]] = document
        company.lines[document["id"]] = []
        for line in body.get(lines_set, []) if isinstance(body.get(lines_set), list) else []:
            self._add_line(company, document, line)
        return self.entity(request, document, f"companies({company.id})/{entity_set}", 201)

    def update_document(self, request: Request, company: CompanyData) -> Response:
        """PATCH a draft's header: ``If-Match`` required, only writable fields, a posted one refused."""
        entity_set = request.params["set"]
        _, number_field, date_field, _ = DOCUMENT_SETS[entity_set]
        document = self._document(company, entity_set, request.params["id"])
        body = request_object(request)
        self.sandbox.document_patches.append((document["id"], request.headers.get("if-match"), body))
        check_if_match(request, document, self.sandbox.conflict_status)
        known_fields(body, _DOCUMENT_FIELDS[entity_set], entity_set[:-1])
        if document["status"] != "Draft":
            raise BcError(400, "Application_DialogException", "Status must be equal to 'Open' in Purchase Header. "
                          f"Current value is '{document['status']}'.")
        changes: dict[str, Any] = {}
        if number_field in body:
            changes[number_field] = str(body[number_field] or "")
            max_length(changes[number_field], 35, number_field)
        for field in (date_field, "postingDate", "dueDate"):
            if field in body:
                changes[field] = edm_date(body[field], field)
        if "currencyCode" in body:
            currency = str(body["currencyCode"] or "")
            known = company.currencies | ({company.local_currency} if self.sandbox.lcy_code_accepted else set())
            if currency and currency not in known:
                raise BcError(400, "Internal_InvalidTableRelation",
                              f"The field Currency Code of table Purchase Header contains a value ({currency}) that "
                              "cannot be found in the related table (Currency).")
            changes["currencyCode"] = currency or company.local_currency
        if {"vendorId", "vendorNumber"} & body.keys():
            vendor = self._document_vendor(company, body)
            changes.update({"vendorId": vendor["id"], "vendorNumber": vendor["number"],
                            "vendorName": vendor["displayName"]})
        document.update(changes)
        document.update({"@odata.etag": new_etag(), "lastModifiedDateTime": now()})
        return self.entity(request, document, f"companies({company.id})/{entity_set}")

    def delete_document(self, request: Request, company: CompanyData) -> Response:
        entity_set = request.params["set"]
        document = self._document(company, entity_set, request.params["id"])
        check_if_match(request, document, self.sandbox.conflict_status)
        if document["status"] != "Draft":
            raise BcError(400, "Application_DialogException",
                          f"You cannot delete {document['number']}: it is posted ({document['status']}).")
        del company.documents[entity_set][document["id"]]
        company.lines.pop(document["id"], None)
        for entity in list(company.attachments):  # attachments go with their document
            for attachment in list(company.attachments[entity].values()):
                if attachment["parentId"] == document["id"]:
                    self.sandbox.content.delete(attachment["id"])
                    del company.attachments[entity][attachment["id"]]
        return Response(204)

    def post_document(self, request: Request, company: CompanyData) -> Response:
        document = self._document(company, request.params["set"], request.params["id"])
        document.update({"status": "Open", "@odata.etag": new_etag(), "lastModifiedDateTime": now()})
        company.posted += 1
        return Response(204)

    def _document(self, company: CompanyData, entity_set: str, document_id: str) -> dict[str, Any]:
        document = company.documents[entity_set].get(document_id.lower())
        if document is None:
            raise BcError(404, "Internal_RecordNotFound",
                          f"The {entity_set[:-1]} does not exist. Identification fields and values: Id='{document_id}'")
        return document

    def _document_vendor(self, company: CompanyData, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("vendorId"):
            vendor = company.vendor_by(id=str(body["vendorId"]))
            if vendor is None or (body.get("vendorNumber") and vendor["number"] != body["vendorNumber"]):
                raise BcError(400, "Internal_RecordNotFound", f"The vendor {body['vendorId']} does not exist.")
        elif body.get("vendorNumber"):
            vendor = company.vendor_by(number=str(body["vendorNumber"]))
            if vendor is None:
                raise BcError(400, "Internal_RecordNotFound", "The Vendor does not exist. Identification fields and "
                                                              f"values: No.='{body['vendorNumber']}'")
        else:
            raise BcError(400, "Application_FieldValidationException", "Buy-from Vendor No. must have a value.")
        if vendor["blocked"] == "All":
            raise BcError(400, "Application_DialogException",
                          f"You cannot create this type of document when Vendor {vendor['number']} is blocked "
                          "with type All.")
        return vendor

    # -- lines -------------------------------------------------------------------------------------

    def lines(self, request: Request, company: CompanyData) -> Response:
        document = self._document_for_lines(request, company)
        return self.collection(request, company.lines.get(document["id"], []),
                               f"companies({company.id})/{request.params['lines']}")

    def create_line(self, request: Request, company: CompanyData) -> Response:
        document = self._document_for_lines(request, company)
        if document["status"] != "Draft":
            raise BcError(400, "Application_DialogException", "Status must be equal to 'Open' in Purchase Header.")
        line = self._add_line(company, document, request_object(request))
        return self.entity(request, line, f"companies({company.id})/{request.params['lines']}", 201)

    def update_line(self, request: Request, company: CompanyData) -> Response:
        document = self._document_for_lines(request, company)
        line = next((ln for ln in company.lines.get(document["id"], [])
                     if ln["id"] == request.params["line"].lower()), None)
        if line is None:
            raise BcError(404, "Internal_RecordNotFound", f"The line {request.params['line']} does not exist.")
        check_if_match(request, line, self.sandbox.conflict_status)
        if document["status"] != "Draft":
            raise BcError(400, "Application_DialogException", "Status must be equal to 'Open' in Purchase Header.")
        body = request_object(request)
        known_fields(body, _LINE_FIELDS, "purchaseInvoiceLine")
        if "description" in body:
            max_length(str(body["description"]), 100, "description")
        line.update({k: v for k, v in body.items() if k in _LINE_FIELDS})
        line["@odata.etag"] = new_etag()
        document.update({"@odata.etag": new_etag(), "lastModifiedDateTime": now()})
        return self.entity(request, line, f"companies({company.id})/{request.params['lines']}")

    def _document_for_lines(self, request: Request, company: CompanyData) -> dict[str, Any]:
        entity_set = request.params["set"]
        if DOCUMENT_SETS[entity_set][0] != request.params["lines"]:
            raise BcError(404, "BadRequest_NotFound", f"No navigation {request.params['lines']} on {entity_set}.")
        return self._document(company, entity_set, request.params["id"])

    def _add_line(self, company: CompanyData, document: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        known_fields(body, _LINE_FIELDS, "purchaseInvoiceLine")
        line_type = body.get("lineType", "Comment")
        if line_type not in _LINE_TYPES:
            raise BcError(400, "BadRequest", f"Cannot convert the literal '{line_type}' to the expected type lineType.")
        description = str(body.get("description", ""))
        max_length(description, 100, "description")
        lines = company.lines.setdefault(document["id"], [])
        line = {"@odata.etag": new_etag(), "id": str(uuid.uuid4()), "documentId": document["id"],
                "sequence": body.get("sequence") or 10000 * (len(lines) + 1), "lineType": line_type,
                "lineObjectNumber": body.get("lineObjectNumber", ""), "description": description,
                "quantity": body.get("quantity", 0), "unitCost": body.get("unitCost", 0)}
        lines.append(line)
        # A new line changes the document's totals, so its etag moves on (as BC's does).
        document.update({"@odata.etag": new_etag(), "lastModifiedDateTime": now()})
        return line


def _count(request: Request, option: str) -> int:
    """A non-negative whole-number query option (0 if absent); anything else is a 400, as in OData."""
    raw = request.arg(option)
    if raw is None or raw == "":
        return 0
    if not raw.isdigit():
        raise BcError(400, "BadRequest", f"Invalid value '{raw}' for the query option {option}: "
                                         "a non-negative integer is expected.")
    return int(raw)
