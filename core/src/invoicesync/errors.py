"""The exception hierarchy. Plugins raise these; the runner turns them into per-document outcomes.

    InvoiceSyncError
    ├── ConfigError            bad or missing settings; fix the config and run again
    ├── PluginError            a plugin could not be loaded or breaks the contract
    ├── AuthError              login failed or was revoked; run ``invoicesync connect`` again
    ├── DocumentError          one document is bad; the run goes on with the others
    ├── WebhookRefused         a webhook delivery is not genuine (bad signature, stale, replayed)
    └── RemoteError            the service answered with an error
        ├── RateLimited        429 (or the service's own throttle signal) after all retries
        ├── ServerError        5xx after all retries
        └── OutcomeUnknown     the request may or may not have taken effect (timeout after send)
"""

from __future__ import annotations


class InvoiceSyncError(Exception):
    """Base class of every error invoicesync raises on purpose."""


class ConfigError(InvoiceSyncError):
    pass


class PluginError(InvoiceSyncError):
    pass


class AuthError(InvoiceSyncError):
    pass


class WebhookRefused(InvoiceSyncError):
    """A webhook delivery that must not be acted on: unsigned, badly signed, too old, replayed or
    unreadable. The message says which (for the server's log), never a secret."""


class DocumentError(InvoiceSyncError):
    """A problem with one document. Names the document and, where known, the field."""

    def __init__(self, message: str, *, document: str | None = None, field: str | None = None):
        self.document = document
        self.field = field
        self.reason = message
        where = ""
        if document:
            where = f"document {document}"
            if field:
                where += f", field {field}"
            where += ": "
        super().__init__(f"{where}{message}")


class RemoteError(InvoiceSyncError):
    """An error answer from a service. ``code`` is the service's own error code, if any."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        service: str | None = None,
    ):
        self.status = status
        self.code = code
        self.service = service
        parts = [p for p in (service, str(status) if status else None, code) if p]
        prefix = f"[{' '.join(parts)}] " if parts else ""
        super().__init__(f"{prefix}{message}")


class RateLimited(RemoteError):
    pass


class ServerError(RemoteError):
    pass


class OutcomeUnknown(RemoteError):
    """The request was sent but no answer came back; look the result up before trying again."""
