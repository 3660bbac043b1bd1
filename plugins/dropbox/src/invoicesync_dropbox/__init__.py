"""invoicesync-dropbox: export invoices to Dropbox (API v2), exactly once."""

__version__ = "0.4.0"
