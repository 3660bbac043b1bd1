"""The shared HTTP layer: one client with retries, budget and token refresh, plus OAuth and paging."""

from ._budget import Budget
from ._client import Authenticator, ErrorParser, HttpClient, ResponseClassifier, Verdict
from ._oauth import PKCE, OAuth2Client, TokenAuth, TokenSet, authorize_in_browser
from ._paging import iter_pages, next_link
from ._retry_after import retry_after_seconds

__all__ = [
    "PKCE",
    "Authenticator",
    "Budget",
    "ErrorParser",
    "HttpClient",
    "OAuth2Client",
    "ResponseClassifier",
    "TokenAuth",
    "TokenSet",
    "Verdict",
    "authorize_in_browser",
    "iter_pages",
    "next_link",
    "retry_after_seconds",
]
