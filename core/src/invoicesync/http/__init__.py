"""The shared HTTP layer: one client with retries, budget and token refresh, plus OAuth and paging.

The retry rules (reads, writes whose outcome can be looked up, throttles, token refreshes) are
written at the top of ``_client`` and at ``OAuth2Client.refresh``; docs/ops.md repeats them."""

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
