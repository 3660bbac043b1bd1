"""invoicesync source plugin for Billit (billit.be): sales and purchase invoices, PDFs and Peppol UBL."""

__version__ = "0.4.0"
