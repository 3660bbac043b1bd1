"""The OAuth token server every sandbox shares: one token endpoint, one store of issued tokens.

``TokenServer.token`` reads the grant (a form, or JSON where the service takes it),
authenticates the client (body fields, or HTTP Basic where the service allows it), dispatches
``authorization_code`` (client, redirect URI and PKCE S256 checked; the code spent even when
refused), ``refresh_token`` (rotated single-use, or long-lived) and ``client_credentials``, and
answers ``{"access_token", "token_type", "expires_in"[, "refresh_token"]}`` plus the service's
own fields. A service subclasses it and says what truly differs as class attributes and small
overrides: its error body (``render``), its refusals (``Refusals``: status, RFC 6749 code,
wording and its own code), lifetimes, token prefixes, extra response fields, scope rules.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from ..http import DEFAULT_REDIRECT_URI
from ._app import Request, Response
from ._oauth import CodeStore, RedirectRegistry


@dataclass(eq=False)
class TokenError(Exception):
    """A refusal of the token endpoint; the service's ``render`` turns it into its error body.

    ``error`` is the RFC 6749 code (empty: the service answers its generic error without one),
    ``code`` the service's own (Billit's ``InvalidCode``, Entra's AADSTS number)."""

    status: int
    error: str
    description: str
    code: str | int | None = None

    def __post_init__(self) -> None:
        super().__init__(self.error or self.code)

    def format(self, **values: Any) -> TokenError:
        return dataclasses.replace(self, description=self.description.format(**values))


_BAD_CODE = TokenError(400, "invalid_grant", "The code is unknown, used or expired.")
_BAD_REFRESH = TokenError(400, "invalid_grant", "The refresh token is unknown, used or revoked.")


@dataclass(frozen=True)
class Refusals:
    """What the service answers in each case the shared endpoint refuses; descriptions may use
    ``{grant}``, ``{client_id}``, ``{scope}``."""

    unsupported_grant: TokenError
    unknown_client: TokenError
    bad_code: TokenError = _BAD_CODE  # unknown, already used or expired
    bad_refresh: TokenError = _BAD_REFRESH  # unknown, revoked or (rotating) already used
    bad_secret: TokenError | None = None  # default: as unknown_client
    code_mismatch: TokenError | None = None  # issued to another client or redirect URI; default: bad_code
    bad_verifier: TokenError | None = None  # PKCE; default: bad_code
    no_client_auth: TokenError | None = None  # a public client's code without PKCE
    refresh_other_client: TokenError | None = None  # default: bad_refresh
    scope_exceeds: TokenError | None = None  # a refresh asking more than was granted
    bad_body: TokenError | None = None  # a body that cannot be read; default: read it leniently
    not_form: TokenError | None = None  # a body that is not a form; default: any body is read as one


class Client(Protocol):
    @property
    def client_id(self) -> str: ...

    @property
    def secret(self) -> str | None: ...


ClientT = TypeVar("ClientT", bound=Client)


def _default_redirects() -> RedirectRegistry:
    return RedirectRegistry([DEFAULT_REDIRECT_URI])


@dataclass
class OAuthClient:
    """A registered client: its id, its secret (``None``: a public client, PKCE only) and the
    redirect URIs it registered."""

    client_id: str
    secret: str | None
    redirects: RedirectRegistry = field(default_factory=_default_redirects)


@dataclass
class IssuedAccess:
    """What an access token stands for. ``kind`` tells user logins from service accounts and
    sessions; ``roles`` are application permissions (client credentials)."""

    client_id: str
    scope: str
    expires_at: float
    refresh_token: str | None = None  # the refresh token issued with it
    kind: str = "user"
    roles: set[str] = field(default_factory=set)
    revoked: bool = False
    used: bool = False


@dataclass
class RefreshGrant:
    client_id: str
    scope: str


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of ``verifier`` (RFC 7636 §4.2)."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def with_query(url: str, params: Mapping[str, str | None]) -> str:
    """``url`` with ``params`` (``None`` values left out) appended to its query, as an
    authorization server redirects back to a registered URI (its own query kept verbatim)."""
    split = urllib.parse.urlsplit(url)
    added = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
    return urllib.parse.urlunsplit(split._replace(query=f"{split.query}&{added}" if split.query else added))


class TokenServer(Generic[ClientT]):
    """An OAuth 2 authorization server's token side; subclass it per service (see module doc)."""

    #: A class attribute, or set per instance where the wording names the tenant.
    refusals: Refusals
    #: Grant types the endpoint serves (besides ``self_authenticating`` ones).
    grants: tuple[str, ...] = ("authorization_code", "refresh_token")
    #: Refuse an unsupported grant before looking at the client (Entra does; RFC order is client first).
    grant_before_client: bool = False
    #: Body: also JSON when the Content-Type says so (Billit); else a form (see ``Refusals.not_form``).
    accept_json: bool = False
    #: How a form is read: blank values kept; the last of repeated fields wins (else the first).
    keep_blank: bool = False
    last_value_wins: bool = False
    #: Client id and secret may come as HTTP Basic (then it wins over the body).
    basic_auth: bool = False
    #: A client may leave its secret out (a public client); only PKCE vouches for its code then.
    public_clients: bool = False
    #: Refresh tokens are single-use: each refresh returns a new one and spends the old.
    rotate_refresh: bool = False
    #: A refresh may ask for a subset of the granted ``scope`` (Dropbox).
    refresh_scope: bool = False
    token_type: str = "Bearer"
    access_prefix: str = ""
    refresh_prefix: str = ""
    access_bytes: int = 32
    refresh_bytes: int = 32

    def __init__(self, clients: Mapping[str, ClientT], access_lifetime: float) -> None:
        self.clients = clients
        self.access_lifetime = access_lifetime
        self.codes = CodeStore()
        self.lock = threading.RLock()
        self.access_tokens: dict[str, IssuedAccess] = {}
        self.refresh_tokens: dict[str, RefreshGrant] = {}  # live refresh token -> what it grants
        self.spent_refresh_tokens: set[str] = set()
        #: Successful refreshes (tests count them).
        self.refreshes = 0
        #: Grants whose request is its own credential (a JWT assertion): handled before any
        #: client authentication, ``(params, request) -> response body``.
        self.self_authenticating: dict[str, Callable[[dict[str, Any], Request], dict[str, Any]]] = {}

    # -- what a service may override ---------------------------------------------------------

    def render(self, error: TokenError, request: Request) -> Response:
        """The service's error body; RFC 6749 §5.2 by default."""
        return Response.json({"error": error.error, "error_description": error.description}, error.status)

    def extra_fields(self, grant: str, access: IssuedAccess) -> dict[str, Any]:
        """Fields the service adds to a token answer (``scope``, ``account_id``, ...)."""
        return {}

    def check_client_scope(self, client: ClientT, scope: str) -> None:
        """Client credentials: raise a ``TokenError`` for a ``scope`` the service refuses."""

    def client_roles(self, client: ClientT) -> set[str]:
        return set(getattr(client, "roles", ()))

    # -- the endpoint ------------------------------------------------------------------------

    def token(self, request: Request) -> Response:
        try:
            params = self.read_params(request)
            grant = params.get("grant_type")
            own = self.self_authenticating.get(str(grant))
            if own is not None:
                return Response.json(own(params, request))
            if self.grant_before_client and grant not in self.grants:
                raise self.refusals.unsupported_grant.format(grant=grant)
            client, with_secret = self.authenticate(params, request)
            with self.lock:
                if grant == "authorization_code" and grant in self.grants:
                    body = self._authorization_code(params, client, with_secret)
                elif grant == "refresh_token" and grant in self.grants:
                    body = self._refresh(params, client)
                elif grant == "client_credentials" and grant in self.grants:
                    body = self._client_credentials(params, client)
                else:
                    raise self.refusals.unsupported_grant.format(grant=grant)
            return Response.json(body)
        except TokenError as refused:
            return self.render(refused, request)

    def read_params(self, request: Request) -> dict[str, Any]:
        content_type = (request.headers.get("content-type") or "").lower()
        if self.refusals.not_form and content_type.split(";")[0].strip() != "application/x-www-form-urlencoded":
            raise self.refusals.not_form
        try:
            if self.accept_json and "json" in content_type:
                params = request.json()
                return params if isinstance(params, dict) else {}
            text = request.body.decode()
        except ValueError:
            if self.refusals.bad_body is None:
                text = request.body.decode("utf-8", "replace")
            else:
                raise self.refusals.bad_body from None
        pairs = urllib.parse.parse_qsl(text, keep_blank_values=self.keep_blank)
        return dict(pairs if self.last_value_wins else reversed(pairs))

    def authenticate(self, params: dict[str, Any], request: Request) -> tuple[ClientT, bool]:
        """The calling client and whether it proved its secret (``False``: a public client,
        which only PKCE can vouch for). Refuses an unknown client or a wrong secret."""
        client_id, secret = params.get("client_id"), params.get("client_secret")
        header = request.headers.get("authorization") or ""
        if self.basic_auth and header.lower().startswith("basic "):
            try:
                client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            except (binascii.Error, ValueError):
                client_id = secret = None
        client = self.clients.get(str(client_id or ""))
        if client is None:
            raise self.refusals.unknown_client.format(client_id=client_id)
        if secret is None and self.public_clients:
            return client, False
        if not isinstance(secret, str) or client.secret is None or not secrets.compare_digest(
                secret.encode(), client.secret.encode()):
            raise (self.refusals.bad_secret or self.refusals.unknown_client).format(client_id=client_id)
        return client, True

    def _authorization_code(self, params: dict[str, Any], client: ClientT, with_secret: bool) -> dict[str, Any]:
        saved = self.codes.redeem(str(params.get("code") or ""))  # single use, even when refused
        refusals = self.refusals
        if saved is None:
            raise refusals.bad_code
        if saved["client_id"] != client.client_id or (saved["redirect_uri"] or None) != (
                params.get("redirect_uri") or None):
            raise refusals.code_mismatch or refusals.bad_code
        if saved["challenge"]:
            if s256(str(params.get("code_verifier") or "")) != saved["challenge"]:
                raise refusals.bad_verifier or refusals.bad_code
        elif not with_secret:
            raise refusals.no_client_auth or refusals.bad_code
        return self.issue_tokens("authorization_code", client.client_id, saved["scope"], refresh=saved["offline"])

    def _refresh(self, params: dict[str, Any], client: ClientT) -> dict[str, Any]:
        presented = str(params.get("refresh_token") or "")
        saved = self.refresh_tokens.get(presented)
        if saved is None:
            raise self.refusals.bad_refresh
        if saved.client_id != client.client_id:
            raise self.refusals.refresh_other_client or self.refusals.bad_refresh
        scope = saved.scope
        if self.refresh_scope and params.get("scope"):
            scope = str(params["scope"])
            if set(scope.split()) - set(saved.scope.split()):
                raise self.refusals.scope_exceeds or self.refusals.bad_refresh
        if self.rotate_refresh:
            del self.refresh_tokens[presented]
            self.spent_refresh_tokens.add(presented)
        self.refreshes += 1
        return self.issue_tokens("refresh_token", client.client_id, scope, refresh=self.rotate_refresh,
                                 refresh_scope=saved.scope)

    def _client_credentials(self, params: dict[str, Any], client: ClientT) -> dict[str, Any]:
        scope = str(params.get("scope") or "")
        self.check_client_scope(client, scope)
        return self.issue_tokens("client_credentials", client.client_id, scope, refresh=False,
                                 roles=self.client_roles(client))

    # -- issuing and checking ----------------------------------------------------------------

    def issue_code(self, client_id: str, redirect_uri: str | None, *, scope: str = "", challenge: str | None = None,
                   offline: bool = True, prefix: str = "") -> str:
        """An authorization code for what the user approved (10 minutes, single use)."""
        return self.codes.issue(prefix, client_id=client_id, redirect_uri=redirect_uri, scope=scope,
                                challenge=challenge or None, offline=offline)

    def issue_tokens(self, grant: str, client_id: str, scope: str = "", *, refresh: bool = True,
                     kind: str = "user", roles: set[str] | None = None, refresh_scope: str | None = None,
                     ) -> dict[str, Any]:
        """A fresh access token (and refresh token if ``refresh``) as the endpoint answers it."""
        access = self.access_prefix + secrets.token_urlsafe(self.access_bytes)
        record = IssuedAccess(client_id, scope, time.time() + self.access_lifetime, kind=kind, roles=set(roles or ()))
        body: dict[str, Any] = {"token_type": self.token_type, "expires_in": int(self.access_lifetime),
                                "access_token": access}
        with self.lock:
            if refresh:
                record.refresh_token = self.refresh_prefix + secrets.token_urlsafe(self.refresh_bytes)
                self.refresh_tokens[record.refresh_token] = RefreshGrant(client_id, refresh_scope or scope)
                body["refresh_token"] = record.refresh_token
            self.access_tokens[access] = record
        body.update(self.extra_fields(grant, record))
        return body

    def lookup(self, token: str) -> tuple[IssuedAccess | None, str | None]:
        """What ``token`` stands for and, if it may not be used, why: ``unknown``, ``revoked``
        or ``expired``."""
        with self.lock:
            access = self.access_tokens.get(token)
        if access is None:
            return None, "unknown"
        if access.revoked:
            return access, "revoked"
        if access.expires_at <= time.time():
            return access, "expired"
        return access, None

    def valid(self, token: str) -> IssuedAccess | None:
        access, problem = self.lookup(token)
        return None if problem else access

    def revoke(self, token: str) -> None:
        """Revoke an access token, or a refresh token (RFC 7009)."""
        with self.lock:
            if token in self.access_tokens:
                self.access_tokens[token].revoked = True
            self.refresh_tokens.pop(token, None)

    def revoke_all(self) -> None:
        with self.lock:
            self.access_tokens.clear()
            self.refresh_tokens.clear()

    def expire_all(self) -> None:
        """Every access token issued so far is expired from now on (refresh tokens stay valid)."""
        with self.lock:
            now = time.time()
            for access in self.access_tokens.values():
                access.expires_at = min(access.expires_at, now - 1)
