"""OAuth logins from the dashboard: the plugin's ``auth_begin`` in one request, ``auth_complete`` in another.

1. The + Import / + Export form calls ``auth_begin`` with the server's own ``/oauth/callback`` and
   keeps what it returns here, on the server (the PKCE verifier never reaches the browser), under
   its ``state``; the page opens the service's login in a popup.
2. The service sends the popup to ``/oauth/callback``. That request comes from another site, so
   the session cookie (SameSite=strict) does not come with it: the page is public, records the
   answer against the login its ``state`` names, and sends the opener on to step 3. An answer
   whose ``state`` this server did not issue (a CLI login sharing the registered redirect URI) is
   only shown, for pasting into the terminal: its single-use code is not traded here.
3. ``/connect/oauth/{state}``, in the session that began the login: ``auth_complete`` trades the
   code, then the company checklist, then the account is saved.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from ..accounts import connect
from ..context import PluginKind
from ..errors import ConfigError, InvoiceSyncError
from ..http import check_redirect_uri
from ..models import Account, AccountDirection, AuthStart, Company
from ..plugins import LoadedPlugin
from ..secrets import redact
from ..workspace import Workspace
from . import _render
from ._sync_pages import notice

CALLBACK_PATH = "/oauth/callback"
#: A login not finished in this time is forgotten (services' codes live about as long).
LOGIN_TTL = 15 * 60.0
#: Logins begun and not finished, at most: a bound on what a logged-in user can make the server keep.
MAX_PENDING = 64
SESSION_KEY = "oauth_logins"
#: The logins a session may finish, newest last (they ride in the session cookie: a few).
SESSION_LOGINS = 8


@dataclass
class PendingLogin:
    plugin: str
    direction: str
    name: str
    settings: dict[str, Any]
    started: AuthStart
    begun_at: float = field(default_factory=time.monotonic)
    callback_url: str | None = None  #: the address the service sent the popup back to
    companies: list[Company] | None = None  #: what ``auth_complete`` returned, awaiting the checklist


class PendingLogins:
    """Logins begun from the dashboard, by ``state``; in memory (a restart forgets them: log in again)."""

    def __init__(self) -> None:
        self._logins: dict[str, PendingLogin] = {}
        self._lock = threading.Lock()

    def add(self, login: PendingLogin) -> None:
        with self._lock:
            self._expire()
            if len(self._logins) >= MAX_PENDING:
                oldest = min(self._logins, key=lambda s: self._logins[s].begun_at)
                del self._logins[oldest]
            self._logins[login.started.state] = login

    def get(self, state: str | None) -> PendingLogin | None:
        with self._lock:
            self._expire()
            return self._logins.get(state) if state else None

    def pop(self, state: str) -> PendingLogin | None:
        with self._lock:
            return self._logins.pop(state, None)

    def _expire(self) -> None:
        now = time.monotonic()
        for state in [s for s, login in self._logins.items() if now - login.begun_at > LOGIN_TTL]:
            del self._logins[state]


def supports_web_login(plugin: LoadedPlugin) -> bool:
    return {"auth_begin", "auth_complete"} <= set(plugin.hooks)


def _account(workspace: Workspace, plugin: LoadedPlugin, name: str, settings: dict[str, Any]) -> Account:
    """The account the login is for: a known one keeps its settings (a file's are the file's)."""
    existing = next((a for a in workspace.accounts() if a.name == name), None)
    if existing is not None and existing.plugin != plugin.name:
        raise ConfigError(f"an account called {name!r} already uses {existing.plugin}; pick another name")
    if existing is not None and existing.origin == "config":
        return existing
    direction = AccountDirection.IMPORT if plugin.kind is PluginKind.SOURCE else AccountDirection.EXPORT
    return Account(name=name, plugin=plugin.name, direction=direction,
                   settings={**(existing.settings if existing else {}), **settings})


def _call(workspace: Workspace, account: Account, ui: Any, hook: str, **kwargs: Any) -> Any:
    ctx = workspace.context(account, ui=ui, options={})
    try:
        return workspace.plugins.call(account.plugin, hook, account=account, ctx=ctx, **kwargs)
    finally:
        ctx.close()


def _public_page(name: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    """A page for a request without the session (the service's redirect): it must not make one, or
    its cookie would replace the user's real session cookie."""
    page = _render._env.get_template(name).render(user=None, csrf="", **context)
    return HTMLResponse(page, status_code=status_code)


class WebLogin:
    def __init__(self, workspace: Workspace, render: Callable[..., Response], *, public_url: str | None = None) -> None:
        self.workspace = workspace
        self.render = render
        self.public_url = check_redirect_uri(public_url).rstrip("/") if public_url else None
        self.pending = PendingLogins()

    async def begin(self, request: Request, plugin: LoadedPlugin, name: str, settings: dict[str, Any],
                    ui: Any, *, direction: str | None = None) -> Response | None:
        """Start the plugin's web login; ``None`` when it has none for this account (connect with ``auth``).
        ``direction`` is the page's (+ Import / + Export) unless given (Sync's "Log in again")."""
        if not supports_web_login(plugin):
            return None
        account = _account(self.workspace, plugin, name, settings)
        redirect_uri = self._callback_url(request)
        started = await run_in_threadpool(_call, self.workspace, account, ui, "auth_begin", redirect_uri=redirect_uri)
        if started is None:
            return None
        if not isinstance(started, AuthStart):
            raise InvoiceSyncError(f"{plugin.name}: auth_begin returned {type(started).__name__}, not an AuthStart")
        direction = direction or request.path_params["direction"]
        self.pending.add(PendingLogin(plugin.name, direction, name, settings, started))
        request.session[SESSION_KEY] = [*request.session.get(SESSION_KEY, [])[-(SESSION_LOGINS - 1):], started.state]
        return self.render(request, "connect_oauth.html", {
            "plugin": plugin, "name": name, "login_url": started.url, "redirect_uri": started.redirect_uri,
            "continue_url": f"/connect/oauth/{started.state}"})

    async def callback(self, request: Request) -> Response:
        """Where the service sends the popup back (public: no session comes with it)."""
        state = request.query_params.get("state")
        login = self.pending.get(state)
        if login is None or login.callback_url is not None:
            # Not a login this server began (or its answer already came): the terminal's, most likely.
            # Show the address to paste there; the code is not traded here, so it still works once.
            address = f"{self._callback_url(request)}?{request.url.query}"  # as the browser shows it
            return _public_page("oauth_foreign.html", {"address": address})
        # Rebuilt from the redirect URI as sent, so a proxy in front does not change what is checked.
        login.callback_url = f"{login.started.redirect_uri}?{request.url.query}"
        return _public_page("oauth_return.html", {"continue_url": f"/connect/oauth/{login.started.state}"})

    def _callback_url(self, request: Request) -> str:
        """The callback as people's browsers reach it (behind a proxy: under ``public_url``)."""
        return self.public_url + CALLBACK_PATH if self.public_url else str(request.url_for("oauth_callback"))

    def _own(self, request: Request) -> tuple[str, PendingLogin | None]:
        state = request.path_params["state"]
        mine = state in request.session.get(SESSION_KEY, [])
        return state, self.pending.get(state) if mine else None

    async def complete(self, request: Request) -> Response:
        state, login = self._own(request)
        if login is None or login.callback_url is None:
            return self.render(request, "missing.html", {"what": "login"}, status_code=404)
        if login.companies is None:
            # The code works once: whatever happens next this login is spent, and of two requests
            # racing here (the popup's and a click) only the one that takes it goes on.
            if self.pending.pop(state) is not login:
                return self.render(request, "missing.html", {"what": "login"}, status_code=404)
            plugin = self.workspace.plugins.get(login.plugin)
            account = _account(self.workspace, plugin, login.name, login.settings)
            try:
                companies = await run_in_threadpool(_call, self.workspace, account, _Silent(), "auth_complete",
                                                    callback_url=login.callback_url, started=login.started)
            except (InvoiceSyncError, ValueError) as exc:
                return self._failed(request, login, redact(str(exc)))
            login.companies = list(companies or [])
            choosing = plugin.kind is PluginKind.SOURCE and len(login.companies) > 1
            if choosing and account.origin != "config" and not _kept_companies(self.workspace, login.name):
                self.pending.add(login)  # again, for the checklist
                return self._companies(request, login)
        return await self._save(request, login, chosen=())

    async def choose(self, request: Request) -> Response:
        state, login = self._own(request)
        if login is None or login.companies is None:
            return self.render(request, "missing.html", {"what": "login"}, status_code=404)
        chosen = [str(c) for c in (await request.form()).getlist("company")]
        if not chosen:
            return self._companies(request, login, error="Choose at least one company.")
        if self.pending.pop(state) is not login:  # saved already, by a request racing this one
            return self.render(request, "missing.html", {"what": "login"}, status_code=404)
        return await self._save(request, login, chosen=chosen)

    async def _save(self, request: Request, login: PendingLogin, *, chosen: list[str] | tuple[()]) -> Response:
        reached = list(login.companies or [])
        try:
            account = await run_in_threadpool(
                connect, self.workspace, login.plugin, ui=_Silent(), name=login.name, settings=login.settings,
                companies=chosen, login=lambda _account: reached)
        except (InvoiceSyncError, ValueError) as exc:
            return self._failed(request, login, redact(str(exc)))
        request.app.state.webhooks.refresh()  # a new source gets its webhooks now, not at the next sweep
        return notice(request, f"Connected {account.name}.")

    def _failed(self, request: Request, login: PendingLogin, message: str) -> Response:
        return self._companies(request, login, error=f"The login did not work: {message}", failed=True)

    def _companies(self, request: Request, login: PendingLogin, *, error: str | None = None,
                   failed: bool = False) -> Response:
        """The checklist of the companies the login reached (or, ``failed``, only the error)."""
        return self.render(request, "connect_companies.html", {
            "plugin": self.workspace.plugins.get(login.plugin), "name": login.name, "error": error,
            "action": f"/connect/oauth/{login.started.state}",
            "retry_url": f"/connect/{login.direction}/{login.plugin}" if failed else None,
            "companies": [] if failed else [(c.id, f"{c.name} ({c.vat_number or c.id})")
                                            for c in login.companies or []]},
            status_code=400 if error else 200)

    def routes(self) -> list[Route]:
        return [
            Route(CALLBACK_PATH, self.callback, methods=["GET"], name="oauth_callback"),
            Route("/connect/oauth/{state}", self.complete, methods=["GET"]),
            Route("/connect/oauth/{state}", self.choose, methods=["POST"]),
        ]


def _kept_companies(workspace: Workspace, name: str) -> bool:
    """A re-connect keeps the companies chosen before (as ``invoicesync connect --relogin`` does)."""
    existing = workspace.state.get_account(name)
    return existing is not None and bool(existing.companies)


class _Silent:
    """The UI of a step no person can answer mid-request: a prompt is an error naming what it wanted."""

    interactive = False

    def echo(self, message: str) -> None:
        pass

    def prompt(self, text: str, *, secret: bool = False, default: str | None = None) -> str:
        if default is not None:
            return default
        raise ConfigError(f"the plugin asked, after the login: {text}")

    def choose(self, text: str, options: Any, *, multiple: bool) -> list[str]:
        raise ConfigError("choose the companies")

    def open_url(self, url: str) -> bool:
        return False
