"""The declared types of Billit's ``Order`` properties (Swagger ``definitions/Order``).

Used to check a fetched order as a whole: a property present with the wrong JSON type is a
malformed payload, reported by name, even when invoicesync does not use that property itself.
"""

from __future__ import annotations

from .mapping import OrderReader

INT32_FIELDS = (
    "OrderID", "CompanyID", "CustomerID", "SupplierID", "CounterPartyID", "PaymentReductionDays",
    "DepartmentID", "ProjectID", "CostCategoryCode", "AccountCode", "RemindersSent", "DaysOverdue",
    "TemplateID", "MessageTemplateID",
)
NUMBER_FIELDS = (
    "PaymentDiscountPercentage", "PaymentDiscountAmount", "TotalExcl", "TotalIncl", "TotalVAT",
    "VatDeduction", "MixedUseProfessionalPercentage", "ToPay", "FXRateToForeign",
)
BOOLEAN_FIELDS = ("Paid", "IsSent", "Invoiced", "Overdue", "ExportedToConnector", "AccountantVerificationNeeded")
DATETIME_FIELDS = (
    "OrderDate", "ExpiryDate", "LastModified", "Created", "PaymentDiscountDate", "PaidDate", "PeriodFrom",
    "PeriodTill", "LastReminder", "DeliveryDate", "TaxPointDate",
)
STRING_FIELDS = (
    "OrderNumber", "OrderType", "OrderDirection", "Journal", "OrderTitle", "VentilationCode", "Reference",
    "PaymentReference", "AboutInvoiceNumber", "OCRRawText", "ExternalProviderID", "ExternalProvider",
    "ProjectName", "Comments", "Currency", "InternalInfo", "AccountingCostTypeTC", "OrderStatus",
    "ApprovalStatus", "PaymentMethod", "AnalyticCostBearer", "AnalyticCostCenter", "PaymentTerms",
)
OBJECT_FIELDS = ("OrderPDF", "Customer", "Supplier", "CounterParty", "CustomFields",
                 "CurrentDocumentDeliveryDetails", "Signature")
ARRAY_FIELDS = (
    "Attachments", "OrderLines", "BookingEntries", "VatGroups", "Tags", "OCRMetaPages",
    "ExternalProviderReferences", "PaymentLinks", "Messages", "AdditionalDocumentReference",
    "ContractDocumentReference", "CategoryFieldItems",
)


def check_order_types(reader: OrderReader) -> None:
    """Raise ``DocumentError`` for the first property whose JSON type breaks the Swagger."""
    for name in INT32_FIELDS:
        reader.int32(name)
    for name in NUMBER_FIELDS:
        reader.decimal(name)
    for name in BOOLEAN_FIELDS:
        reader.boolean(name)
    for name in DATETIME_FIELDS:
        reader.timestamp(name)
    for name in STRING_FIELDS:
        reader.string(name)
    for name in OBJECT_FIELDS:
        reader.obj(name)
    for name in ARRAY_FIELDS:
        reader.array(name)
