"""invoicesync: move invoices from where they are made to where they are kept and booked.

The public API for plugin authors. Everything a connector needs is importable from here.
"""

from .context import UI, Context, NonInteractiveUI, PluginInfo, PluginKind, Settings
from .errors import (
    AuthError,
    ConfigError,
    DocumentError,
    InvoiceSyncError,
    OutcomeUnknown,
    PluginError,
    RateLimited,
    RemoteError,
    ServerError,
)
from .hookspecs import API_VERSION, hookimpl
from .models import (
    Account,
    AccountDirection,
    Checkpoint,
    Company,
    Deletion,
    Delivery,
    DeliveryStatus,
    Direction,
    Document,
    DocumentKind,
    DocumentRef,
    FileRef,
    FileRole,
    ListingError,
    Party,
    PushRequest,
)

__version__ = "0.1.0"

__all__ = [
    "API_VERSION",
    "UI",
    "Account",
    "AccountDirection",
    "AuthError",
    "Checkpoint",
    "Company",
    "ConfigError",
    "Context",
    "Deletion",
    "Delivery",
    "DeliveryStatus",
    "Direction",
    "Document",
    "DocumentError",
    "DocumentKind",
    "DocumentRef",
    "FileRef",
    "FileRole",
    "InvoiceSyncError",
    "ListingError",
    "NonInteractiveUI",
    "OutcomeUnknown",
    "Party",
    "PluginError",
    "PluginInfo",
    "PluginKind",
    "PushRequest",
    "RateLimited",
    "RemoteError",
    "ServerError",
    "Settings",
    "hookimpl",
]
