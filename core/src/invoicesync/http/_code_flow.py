"""A plugin's OAuth authorization-code login in one place, for both ways of running it.

- The terminal (the ``auth`` hook, ``invoicesync connect``): ``in_browser`` opens the login and
  waits on a loopback redirect URI, or has the person paste the address they land on.
- A web server (the ``auth_begin`` / ``auth_complete`` hooks, ``invoicesync serve``): ``begin``
  returns the URL and a fresh ``state`` for the server's own callback; ``complete`` takes the
  address the browser came back to, in a later request.

Both are the same two steps (``begin``, then ``complete``): only how the answer travels differs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..models import AuthStart
from ._authorize import browser_callback, check_redirect_uri, code_from_callback, new_state
from ._oauth import PKCE, OAuth2Client, TokenSet


@dataclass
class CodeFlow:
    """The authorization-code flow of one service, as its plugin describes it."""

    oauth: OAuth2Client
    #: The service's login page.
    authorize_url: str
    #: Query parameters of the login page besides ``redirect_uri``, ``state`` and PKCE's (client_id,
    #: response_type, scope, …); a ``None`` value is left out.
    params: Mapping[str, str | None] = field(default_factory=dict)
    #: Send an S256 PKCE challenge (RFC 7636) where the service takes one.
    pkce: bool = False
    #: Checks and keeps the token set (e.g. refuses one without a refresh token, stores it).
    keep: Callable[[TokenSet], None] | None = None

    def begin(self, redirect_uri: str) -> AuthStart:
        redirect_uri = check_redirect_uri(redirect_uri)
        state = new_state()
        pkce = PKCE() if self.pkce else None
        challenge = {"code_challenge": pkce.challenge, "code_challenge_method": "S256"} if pkce else {}
        url = self.oauth.authorization_url(self.authorize_url, **self.params, redirect_uri=redirect_uri,
                                           state=state, **challenge)
        return AuthStart(url=url, state=state, redirect_uri=redirect_uri, verifier=pkce.verifier if pkce else None)

    def complete(self, callback_url: str, started: AuthStart) -> TokenSet:
        """Check the answer (redirect URI, ``state``, error), trade its code once, keep the tokens."""
        code = code_from_callback(callback_url, started)
        token = self.oauth.exchange_code(code, started.redirect_uri, verifier=started.verifier)
        if self.keep is not None:
            self.keep(token)
        return token

    def in_browser(self, ui: Any, *, redirect_uri: str | None, no_browser: bool = False,
                   timeout: float = 300.0) -> TokenSet:
        """The terminal's login: ``begin``, the browser (or a pasted address), ``complete``."""
        callback, started = browser_callback(ui, self.begin, redirect_uri=redirect_uri, no_browser=no_browser,
                                             timeout=timeout)
        return self.complete(callback, started)
