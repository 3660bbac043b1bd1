"""The properties of each entity set the emulator serves, with their EDM types (from the BC API v2.0
resource pages), so ``$filter`` and ``$select`` are checked as BC's OData layer checks them: an
unknown property, or a literal of the wrong type, is a 400 rather than a silently empty page."""

from __future__ import annotations

GUID, STRING, DECIMAL, INT, BOOLEAN, DATE, DATETIME, STREAM = (
    "Edm.Guid", "Edm.String", "Edm.Decimal", "Edm.Int32", "Edm.Boolean", "Edm.Date", "Edm.DateTimeOffset",
    "Edm.Stream")

_COMPANY = {"id": GUID, "systemVersion": STRING, "timestamp": INT, "name": STRING, "displayName": STRING,
            "businessProfileId": STRING, "systemCreatedAt": DATETIME, "systemCreatedBy": GUID,
            "systemModifiedAt": DATETIME, "systemModifiedBy": GUID}
_VENDOR = {"id": GUID, "number": STRING, "displayName": STRING, "addressLine1": STRING, "addressLine2": STRING,
           "city": STRING, "state": STRING, "country": STRING, "postalCode": STRING, "phoneNumber": STRING,
           "email": STRING, "website": STRING, "taxRegistrationNumber": STRING, "currencyId": GUID,
           "currencyCode": STRING, "irs1099Code": STRING, "paymentTermsId": GUID, "paymentMethodId": GUID,
           "taxLiable": BOOLEAN, "blocked": STRING, "balance": DECIMAL, "lastModifiedDateTime": DATETIME}
_DOCUMENT = {"id": GUID, "number": STRING, "postingDate": DATE, "dueDate": DATE, "vendorId": GUID,
             "vendorNumber": STRING, "vendorName": STRING, "payToVendorId": GUID, "payToVendorNumber": STRING,
             "payToName": STRING, "shipToName": STRING, "currencyId": GUID, "currencyCode": STRING,
             "shortcutDimension1Code": STRING, "shortcutDimension2Code": STRING, "purchaser": STRING,
             "pricesIncludeTax": BOOLEAN, "discountAmount": DECIMAL, "discountAppliedBeforeTax": BOOLEAN,
             "totalAmountExcludingTax": DECIMAL, "totalTaxAmount": DECIMAL, "totalAmountIncludingTax": DECIMAL,
             "status": STRING, "lastModifiedDateTime": DATETIME}
_LINE = {"id": GUID, "documentId": GUID, "sequence": INT, "lineType": STRING, "lineObjectNumber": STRING,
         "accountId": GUID, "itemId": GUID, "description": STRING, "description2": STRING,
         "unitOfMeasureCode": STRING, "unitCost": DECIMAL, "quantity": DECIMAL, "discountAmount": DECIMAL,
         "discountPercent": DECIMAL, "taxCode": STRING, "locationId": GUID, "itemVariantId": GUID,
         "expectedReceiptDate": DATE, "amountExcludingTax": DECIMAL, "totalTaxAmount": DECIMAL,
         "netAmount": DECIMAL}
_ATTACHMENT = {"id": GUID, "parentId": GUID, "fileName": STRING, "byteSize": INT, "attachmentContent": STREAM,
               "parentType": STRING, "lastModifiedDateTime": DATETIME}

#: Entity set → (OData type name, its properties and their types).
ENTITY_SETS: dict[str, tuple[str, dict[str, str]]] = {
    "companies": ("company", _COMPANY),
    "vendors": ("vendor", _VENDOR),
    "purchaseInvoices": ("purchaseInvoice", {**_DOCUMENT, "invoiceDate": DATE, "vendorInvoiceNumber": STRING,
                                             "orderId": GUID, "orderNumber": STRING}),
    "purchaseCreditMemos": ("purchaseCreditMemo", {**_DOCUMENT, "creditMemoDate": DATE,
                                                   "vendorCreditMemoNumber": STRING, "invoiceId": GUID,
                                                   "invoiceNumber": STRING}),
    "purchaseInvoiceLines": ("purchaseInvoiceLine", _LINE),
    "purchaseCreditMemoLines": ("purchaseCreditMemoLine", _LINE),
    "attachments": ("attachment", _ATTACHMENT),
    "documentAttachments": ("documentAttachment", {**_ATTACHMENT, "lineNumber": INT, "documentFlowSales": BOOLEAN,
                                                   "documentFlowPurchase": BOOLEAN}),
}
