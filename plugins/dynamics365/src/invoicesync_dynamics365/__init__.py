"""invoicesync target for Dynamics 365 Business Central (API v2.0): draft purchase invoices and
credit memos with the PDF (and UBL) attached, matched to existing vendors, never posted."""

__version__ = "0.4.0"
