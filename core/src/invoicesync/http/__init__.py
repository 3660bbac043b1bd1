"""The shared HTTP layer: one client with retries, budget and token refresh, plus OAuth and paging.

The retry rules (reads, writes whose outcome can be looked up, throttles, token refreshes) are
written at the top of ``_client`` and at ``OAuth2Client.refresh``; docs/ops.md repeats them.

Each name is imported from its module on first use (PEP 562): a sync needs the client, the budgets
and OAuth's token refresh, not the browser login's local server (``http.server``), ``ipaddress``
or the code flow, which ``connect`` alone uses.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._authorize import (
        DEFAULT_REDIRECT_URI,
        RedirectUri,
        authorize_in_browser,
        browser_callback,
        callback_state,
        check_redirect_uri,
        code_from_callback,
        is_loopback,
    )
    from ._budget import Budget, RequestBudget
    from ._client import Authenticator, ErrorParser, HttpClient, ResponseClassifier, Verdict
    from ._code_flow import CodeFlow
    from ._login import keep_or_login, relogin_command, relogin_hint, secret_for_login, wants_relogin
    from ._oauth import PKCE, OAuth2Client, TokenAuth, TokenSet
    from ._paging import iter_pages, next_link
    from ._retry_after import retry_after_seconds
    from ._shared_budget import BudgetLedger, SharedBudget

#: Where each public name lives.
_HOME = {
    "DEFAULT_REDIRECT_URI": "_authorize",
    "RedirectUri": "_authorize",
    "authorize_in_browser": "_authorize",
    "browser_callback": "_authorize",
    "callback_state": "_authorize",
    "check_redirect_uri": "_authorize",
    "code_from_callback": "_authorize",
    "is_loopback": "_authorize",
    "Budget": "_budget",
    "RequestBudget": "_budget",
    "Authenticator": "_client",
    "ErrorParser": "_client",
    "HttpClient": "_client",
    "ResponseClassifier": "_client",
    "Verdict": "_client",
    "CodeFlow": "_code_flow",
    "keep_or_login": "_login",
    "relogin_command": "_login",
    "relogin_hint": "_login",
    "secret_for_login": "_login",
    "wants_relogin": "_login",
    "PKCE": "_oauth",
    "OAuth2Client": "_oauth",
    "TokenAuth": "_oauth",
    "TokenSet": "_oauth",
    "iter_pages": "_paging",
    "next_link": "_paging",
    "retry_after_seconds": "_retry_after",
    "BudgetLedger": "_shared_budget",
    "SharedBudget": "_shared_budget",
}


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # once: later reads are plain attribute reads
    return value


__all__ = [
    "DEFAULT_REDIRECT_URI",
    "PKCE",
    "RedirectUri",
    "RequestBudget",
    "Authenticator",
    "Budget",
    "BudgetLedger",
    "CodeFlow",
    "ErrorParser",
    "HttpClient",
    "OAuth2Client",
    "ResponseClassifier",
    "SharedBudget",
    "TokenAuth",
    "TokenSet",
    "Verdict",
    "authorize_in_browser",
    "browser_callback",
    "callback_state",
    "check_redirect_uri",
    "code_from_callback",
    "is_loopback",
    "iter_pages",
    "keep_or_login",
    "next_link",
    "relogin_command",
    "relogin_hint",
    "retry_after_seconds",
    "secret_for_login",
    "wants_relogin",
]
