"""invoicesync: move invoices from where they are made to where they are kept and booked.

The public API for plugin authors. Everything a connector needs is importable from here.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
        WebhookRefused,
    )
    from .hookspecs import API_VERSION, hookimpl
    from .kv_shards import Generation, ShardedValue, ShardMissing
    from .models import (
        Account,
        AccountDirection,
        AuthStart,
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
        WebhookEvent,
        WebhookSubscription,
    )

__version__ = "0.4.0"

# Imported on first use (PEP 562): the CLI imports this package to print ``--help``, and the names
# below pull in pydantic and httpx, which cost more than the whole of ``--help`` may take.
_HOMES = {
    "context": ("UI", "Context", "NonInteractiveUI", "PluginInfo", "PluginKind", "Settings"),
    "errors": ("AuthError", "ConfigError", "DocumentError", "InvoiceSyncError", "OutcomeUnknown", "PluginError",
               "RateLimited", "RemoteError", "ServerError", "WebhookRefused"),
    "hookspecs": ("API_VERSION", "hookimpl"),
    "kv_shards": ("Generation", "ShardMissing", "ShardedValue"),
    "models": ("Account", "AccountDirection", "AuthStart", "Checkpoint", "Company", "Deletion", "Delivery",
               "DeliveryStatus", "Direction", "Document", "DocumentKind", "DocumentRef", "FileRef", "FileRole",
               "ListingError", "Party", "PushRequest", "WebhookEvent", "WebhookSubscription"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _HOME_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'invoicesync' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # once: later lookups do not come back here
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOME_OF])


__all__ = [
    "API_VERSION",
    "UI",
    "Account",
    "AccountDirection",
    "AuthError",
    "AuthStart",
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
    "Generation",
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
    "ShardMissing",
    "ShardedValue",
    "WebhookEvent",
    "WebhookRefused",
    "WebhookSubscription",
    "hookimpl",
]
