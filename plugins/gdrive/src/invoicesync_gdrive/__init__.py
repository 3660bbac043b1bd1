"""invoicesync-gdrive: export invoices into a Google Drive folder tree, exactly once."""

__version__ = "0.4.0"
