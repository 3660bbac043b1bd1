"""OAuth 2.0 as a core service: the token endpoint (code exchange, refresh) and ``TokenAuth``.

Refresh tokens may be single-use (Billit rotates them). ``TokenAuth`` therefore stores the new
token set durably *before* the new access token is used, so a crash can never lose the login,
and refreshes one token at a time, so two threads — or two worker processes sharing a state,
through the state's named lock — never spend the same refresh token. What is
resent when a token request gets no answer is written at ``OAuth2Client.refresh``.
The browser step lives in ``_authorize``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets as pysecrets
import threading
import time
import urllib.parse
from collections.abc import Callable, Hashable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Protocol

import httpx
from pydantic import BaseModel, ValidationError

from ..errors import AuthError, OutcomeUnknown
from ..secrets import safe_error_text
from ._client import HttpClient

log = logging.getLogger("invoicesync.http")


class TokenSet(BaseModel):
    access_token: str
    refresh_token: str | None = None
    expires_at: float | None = None
    token_type: str = "Bearer"
    scope: str | None = None

    @classmethod
    def from_response(cls, body: dict[str, Any], *, previous: TokenSet | None = None) -> TokenSet:
        if "access_token" not in body:
            raise AuthError("the token endpoint answered without an access_token")
        expires_in = body.get("expires_in")
        return cls(
            access_token=body["access_token"],
            # Keep the old refresh token when the server does not rotate it.
            refresh_token=body.get("refresh_token") or (previous.refresh_token if previous else None),
            expires_at=time.time() + float(expires_in) if expires_in else None,
            token_type=body.get("token_type") or "Bearer",
            scope=body.get("scope"),
        )

    def expires_within(self, seconds: float) -> bool:
        return self.expires_at is not None and self.expires_at - time.time() <= seconds


class SecretSlot(Protocol):
    """Where a token set is kept (``AccountSecrets`` implements this). A slot may also offer
    ``version(key) -> Hashable | None``: a cheap mark that changes whenever the stored value may
    have (the secrets file's inode, mtime and size); ``None`` when it cannot tell cheaply; and
    ``lock(key, timeout=...)``: a context manager holding ``key`` against other processes (the
    state's named lock), under which refreshes are made."""

    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str) -> None: ...


class PKCE:
    """An S256 code verifier and its challenge (RFC 7636)."""

    def __init__(self) -> None:
        self.verifier = pysecrets.token_urlsafe(48)  # 64 characters of [A-Za-z0-9_-], as RFC 7636 allows
        digest = hashlib.sha256(self.verifier.encode("ascii")).digest()
        self.challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class OAuth2Client:
    """Builds authorize URLs and talks to a token endpoint through the shared ``HttpClient``."""

    def __init__(
        self,
        http: HttpClient,
        *,
        token_url: str,
        client_id: str,
        client_secret: str | None = None,
        basic_auth: bool = False,
        json_body: bool = False,
        extra_refresh_params: dict[str, str] | None = None,
        rotating_refresh_tokens: bool = False,
        relogin: str | None = None,
    ) -> None:
        self.http = http
        self.token_url = token_url
        self.client_id = client_id
        self.client_secret = client_secret
        self.basic_auth = basic_auth
        #: Send the token request as JSON (some services, e.g. Billit, document that) instead of a
        #: form. A 415 answer means nothing was processed, so the form is then sent once.
        self.json_body = json_body
        self.extra_refresh_params = extra_refresh_params or {}
        #: The service hands out a new refresh token on each refresh and refuses the old one.
        self.rotating_refresh_tokens = rotating_refresh_tokens
        #: The command that logs the account in again, named in every refusal (``relogin_command``).
        self.relogin = relogin

    def authorization_url(self, authorize_url: str, **params: str | None) -> str:
        parts = urllib.parse.urlsplit(authorize_url)
        query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        query += [(k, v) for k, v in params.items() if v is not None]
        return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))

    def exchange_code(self, code: str, redirect_uri: str, *, verifier: str | None = None) -> TokenSet:
        """Trade the code from the login for tokens. A code works once: after a lost answer it
        cannot be sent again (the service would refuse it, or revoke what it issued), so the
        user is asked to log in again instead."""
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        if verifier:
            data["code_verifier"] = verifier
        try:
            return TokenSet.from_response(self._post(data, idempotent=False))
        except OutcomeUnknown:
            raise AuthError(f"{self.http.service}: the token endpoint gave no answer to the login (a login "
                            "code works only once); log in again") from None

    def refresh(self, token: TokenSet) -> TokenSet:
        """A new access token from the refresh token. The retry rule for refreshes:

        - A refresh token that is not rotated (Dropbox, Google) may be sent any number of times:
          the refresh is marked idempotent and retried like a read.
        - A single-use rotating refresh token (Billit) is sent once. If no answer comes back (a
          lost answer, or a 5xx), it is sent **once more with the same refresh token**: a server
          that did not process the first request accepts it; one that did has spent the token and
          answers ``invalid_grant``. The login is then lost and the error names the relogin
          command. Rotation is never guessed at: nothing else is sent.
        - Any refusal (``invalid_grant``: revoked or spent; ``invalid_client``) is an ``AuthError``
          that names the relogin command.

        Callers serialise refreshes of one login (``TokenAuth`` holds a lock per secret, and the
        state's named lock across processes), so two workers never spend one refresh token; the
        new token set is stored before it is used.
        """
        if not token.refresh_token:
            raise AuthError(f"{self.http.service}: the login has no refresh token; {self._fix()}")
        data = {"grant_type": "refresh_token", "refresh_token": token.refresh_token, **self.extra_refresh_params}
        if not self.rotating_refresh_tokens:
            return TokenSet.from_response(self._post(data, idempotent=True), previous=token)
        try:
            body = self._post(data, idempotent=False)
        except OutcomeUnknown:
            try:
                body = self._post(data, idempotent=False)
            except OutcomeUnknown as exc:
                raise AuthError(f"{self.http.service}: the token endpoint gave no answer to two refreshes "
                                f"({exc}); the next run tries again. If it then reports the login refused, "
                                f"{self._fix()}") from None
        return TokenSet.from_response(body, previous=token)

    def _fix(self) -> str:
        return f"run `{self.relogin}` to log in again" if self.relogin else "connect the account again"

    def _post(self, data: dict[str, str], *, idempotent: bool) -> dict[str, Any]:
        auth = None
        if self.basic_auth and self.client_secret:
            auth = (self.client_id, self.client_secret)
        else:
            data = {**data, "client_id": self.client_id}
            if self.client_secret:
                data["client_secret"] = self.client_secret
        response = self._send(data, auth, as_json=self.json_body, idempotent=idempotent)
        if self.json_body and response.status_code == 415:
            response = self._send(data, auth, as_json=False, idempotent=idempotent)
        body = _json_or_empty(response)
        if not response.is_success:
            reason = body.get("error_description") or body.get("error")
            if not reason and self.http.error_parser is not None:
                reason = str(self.http.error_parser(response))  # the service's own error shape
            raise AuthError(f"{self.http.service}: the token endpoint refused the request "
                            f"({reason or response.reason_phrase}); {self._fix()}")
        return body

    def _send(self, data: dict[str, str], auth: tuple[str, str] | None, *, as_json: bool,
              idempotent: bool) -> httpx.Response:
        content, content_type = ((json.dumps(data).encode(), "application/json") if as_json
                                 else (urllib.parse.urlencode(data).encode(), "application/x-www-form-urlencoded"))
        # A 415 means nothing was processed, so the form goes once more (see ``json_body``).
        return self.http.request(
            "POST", self.token_url, content=content,
            headers={"Content-Type": content_type, "Accept": "application/json", **_basic(auth)},
            idempotent=idempotent, check=False,
        )


class TokenAuth:
    """An ``Authenticator`` that keeps a token set in a secret slot and refreshes it in time."""

    def __init__(
        self,
        slot: SecretSlot,
        refresh: Callable[[TokenSet], TokenSet],
        *,
        key: str = "oauth_token",
        header: str = "Authorization",
        scheme: str = "Bearer",
        early: float = 300.0,
        relogin: str | None = None,
        lock_timeout: float = 300.0,
    ) -> None:
        self.slot = slot
        self._refresh = refresh
        self.key = key
        self.header = header
        self.scheme = scheme
        self.early = early
        self.relogin = relogin
        #: Seconds to wait for another process's refresh of this login (``SecretSlot.lock``).
        self.lock_timeout = lock_timeout
        # Shared by every TokenAuth over the same secret: two of them must never both spend one
        # single-use refresh token.
        self._lock = _slot_lock(slot, key)
        self._used = threading.local()  # the access token this thread last sent
        # The token set as last read or stored, and the slot's version mark when it was read:
        # reading the store per request cost ~5% of a busy run. Another process's refresh is
        # seen by a changed mark; a store that cannot tell cheaply (the keyring) is read again
        # when the token expires or is refused (``_renew`` always reads under the lock).
        # One tuple, replaced whole, so that threads never pair one token with another's mark.
        self._memo: tuple[TokenSet, Hashable | None] | None = None

    def _across_processes(self) -> AbstractContextManager[object]:
        lock = getattr(self.slot, "lock", None)
        if not callable(lock):
            return nullcontext()
        # Long enough for another worker's refresh with its retries; then the run reports the wait.
        held: AbstractContextManager[object] = lock(self.key, timeout=self.lock_timeout)
        return held

    def _version(self) -> Hashable | None:
        version = getattr(self.slot, "version", None)
        return version(self.key) if callable(version) else None

    def current(self) -> TokenSet:
        """The stored token set, read from the store (and remembered for ``apply``)."""
        version = self._version()  # taken before the read: a write in between shows as a change later
        token = self._read()
        self._memo = (token, version)
        return token

    def _read(self) -> TokenSet:
        raw = self.slot.get(self.key)
        fix = f"`{self.relogin}`" if self.relogin else "`invoicesync connect` for this account"
        if not raw:
            raise AuthError(f"not logged in; run {fix}")
        try:
            return TokenSet.model_validate_json(raw)
        except ValidationError as exc:
            # Damaged, or a bare token put where a token set belongs: only a new login mends it.
            # Described without its input, which is the secret itself.
            raise AuthError(f"the stored login ({self.key}) is not a usable token set "
                            f"({safe_error_text(exc)}); run {fix} to log in again") from None

    def store(self, token: TokenSet) -> None:
        self.slot.set(self.key, token.model_dump_json())
        # Kept, but checked against the store once more on the next request (another process may
        # have written after us); a store without version marks keeps it until expiry or a 401.
        self._memo = (token, _UNREAD)

    def _known(self) -> TokenSet:
        """The remembered token set while the store's version mark says it is still the stored one."""
        memo = self._memo
        if memo is not None and memo[1] is not _UNREAD and memo[1] == self._version():
            return memo[0]
        return self.current()

    def apply(self, request: httpx.Request) -> None:
        token = self._known()
        if token.expires_within(self.early):
            token = self._renew(refused=None)
        self._used.token = token.access_token
        request.headers[self.header] = f"{self.scheme} {token.access_token}".strip()

    def refresh(self) -> bool:
        self._renew(refused=getattr(self._used, "token", None))
        return True

    def _renew(self, *, refused: str | None) -> TokenSet:
        """Refresh once per refused (or expiring) token, however many threads — and processes
        sharing the state — notice it: under this process's lock, then the state's lock on the
        secret (``SecretSlot.lock``), the stored token is read again before anything is spent."""
        asked = time.monotonic()
        with self._lock, self._across_processes():
            if (waited := time.monotonic() - asked) >= 1.0:  # ops watch these: docs/scale-out.md
                log.info("%s: waited %.1f s for another refresh of this login", self.key, waited)
            token = self.current()
            if refused is not None and token.access_token != refused:
                return token  # another thread already replaced the refused token
            if refused is None and not token.expires_within(self.early):
                return token
            new = self._refresh(token)
            self.store(new)  # durable before first use: the old refresh token is spent now
            return new


_UNREAD: Hashable = object()  # the version mark of a token set not (re)read from the store yet

_SLOT_LOCKS = [threading.Lock() for _ in range(64)]


def _slot_lock(slot: SecretSlot, key: str) -> threading.Lock:
    owner = getattr(slot, "account", None) or id(slot)
    return _SLOT_LOCKS[hash((owner, key)) % len(_SLOT_LOCKS)]


def _basic(auth: tuple[str, str] | None) -> dict[str, str]:
    if auth is None:
        return {}
    token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _json_or_empty(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
