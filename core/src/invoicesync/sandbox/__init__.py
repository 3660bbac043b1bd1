"""Build local emulators of a plugin's service: routing, fault injection, a loopback server and
the OAuth server parts (redirect URIs, codes, the token endpoint) the emulators share."""

from ._app import DropConnection, Fault, Request, Response, SandboxApp, file_chunks
from ._oauth import CODE_LIFETIME, CodeStore, RedirectRegistry
from ._server import RunningSandbox, serve
from ._tokens import IssuedAccess, OAuthClient, RefreshGrant, Refusals, TokenError, TokenServer, s256, with_query

__all__ = ["CODE_LIFETIME", "CodeStore", "DropConnection", "Fault", "IssuedAccess", "OAuthClient", "RedirectRegistry",
           "RefreshGrant", "Refusals", "Request", "Response", "RunningSandbox", "SandboxApp", "TokenError",
           "TokenServer", "file_chunks", "s256", "serve", "with_query"]
