"""Business Central API v2.0 attachment handlers: ``attachments`` and ``documentAttachments``, their
metadata and their content (uploaded and downloaded as a stream)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from invoicesync.sandbox import Request, Response

from ._bc_rules import BcError, check_if_match, known_fields, max_length, request_object
from ._store import DOCUMENT_SETS, PARENT_TYPES, CompanyData, new_etag, now

if TYPE_CHECKING:
    from . import BusinessCentralSandbox


class AttachmentsApi:
    """Mixed into ``BcApi``, which answers with its ``collection`` and ``entity``."""

    sandbox: BusinessCentralSandbox
    collection: Callable[[Request, list[dict[str, Any]], str], Response]
    entity: Callable[..., Response]

    def attachments(self, request: Request, company: CompanyData) -> Response:
        entity = request.params["att"]
        items = list(company.attachments[entity].values())
        if request.params.get("id"):  # navigation from a document
            items = [a for a in items if a["parentId"] == request.params["id"].lower()]
        return self.collection(request, items, f"companies({company.id})/{entity}")

    def attachment(self, request: Request, company: CompanyData) -> Response:
        entity = request.params["att"]
        return self.entity(request, self._attachment(company, entity, request.params["id"]),
                           f"companies({company.id})/{entity}")

    def create_attachment(self, request: Request, company: CompanyData) -> Response:
        entity = request.params["att"]
        body = request_object(request)
        allowed = {"parentId", "parentType", "fileName", "attachmentContent"}
        if entity == "documentAttachments":
            allowed |= {"lineNumber", "documentFlowSales", "documentFlowPurchase"}
        known_fields(body, allowed, entity[:-1])
        parent_type = str(body.get("parentType", ""))
        if parent_type not in PARENT_TYPES[entity]:
            raise BcError(400, "BadRequest", f"Cannot convert the literal '{parent_type}' to the expected type "
                                             f"parentType of {entity}.")
        parent_id = str(body.get("parentId", "")).lower()
        parent_sets = {v[3]: k for k, v in DOCUMENT_SETS.items()}
        if parent_type in parent_sets and parent_id not in company.documents[parent_sets[parent_type]]:
            raise BcError(400, "Internal_RecordNotFound", f"The {parent_type} {parent_id} does not exist.")
        file_name = str(body.get("fileName", ""))
        if not file_name:
            raise BcError(400, "Application_FieldValidationException", "File Name must have a value.")
        if "file_name_length" not in self.sandbox.lenient:
            max_length(file_name, 250, "fileName")  # Document Attachment "File Name" is Text[250]
        attachment: dict[str, Any] = {"@odata.etag": new_etag(), "id": str(uuid.uuid4()), "parentId": parent_id,
                                      "fileName": file_name, "byteSize": 0, "lastModifiedDateTime": now(),
                                      "parentType": parent_type}
        if entity == "documentAttachments":
            attachment.update({"lineNumber": 0, "documentFlowSales": False, "documentFlowPurchase": False})
        company.attachments[entity][attachment["id"]] = attachment
        return self.entity(request, attachment, f"companies({company.id})/{entity}", 201)

    def upload_content(self, request: Request, company: CompanyData) -> Response:
        attachment = self._attachment(company, request.params["att"], request.params["id"])
        check_if_match(request, attachment, self.sandbox.conflict_status)
        content_type = request.headers.get("content-type") or ""
        self.sandbox.upload_content_types.append(content_type)
        if content_type.split(";")[0].strip().lower() == "application/json" \
                and "json_content" not in self.sandbox.lenient:
            raise BcError(400, "BadRequest", "The attachment content must be the raw file, not JSON.")
        limit = None if "upload_size" in self.sandbox.lenient else self.sandbox.max_upload_bytes
        size = self.sandbox.content.write(attachment["id"], request.iter_body(), limit=limit)
        if size is None:
            raise BcError(413, "BadRequest_RequestEntityTooLarge",
                          f"The file is larger than the maximum upload size ({self.sandbox.max_upload_bytes} bytes).")
        attachment.update({"byteSize": size, "@odata.etag": new_etag(), "lastModifiedDateTime": now()})
        return Response(204)

    def download_content(self, request: Request, company: CompanyData) -> Response:
        attachment = self._attachment(company, request.params["att"], request.params["id"])
        return Response(200, self.sandbox.content.chunks(attachment["id"]),  # streamed: files may be large
                        {"Content-Type": "application/octet-stream"})

    def delete_attachment(self, request: Request, company: CompanyData) -> Response:
        attachment = self._attachment(company, request.params["att"], request.params["id"])
        check_if_match(request, attachment, self.sandbox.conflict_status)
        self.sandbox.content.delete(attachment["id"])
        del company.attachments[request.params["att"]][attachment["id"]]
        return Response(204)

    def _attachment(self, company: CompanyData, entity: str, attachment_id: str) -> dict[str, Any]:
        attachment = company.attachments[entity].get(attachment_id.lower())
        if attachment is None:
            raise BcError(404, "Internal_RecordNotFound", f"The attachment {attachment_id} does not exist.")
        return attachment

