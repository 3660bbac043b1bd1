"""The dashboard's ASGI app: the same Workspace, state, plugins and pipeline as the CLI."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ..workspace import Workspace
from . import _auth, _connect_pages, _documents_pages, _history_pages, _sync_pages
from ._jobs import SyncJobs
from ._metrics import ServerMetrics
from ._oauth_pages import WebLogin
from ._render import HERE, render
from ._scheduler import Clock, Scheduler, utc_now
from ._users import Users, session_secret
from ._webhooks import WebhookReceiver

SESSION_HOURS = 12
#: Scripts and styles only from the dashboard itself; frames (the PDF preview) only of itself.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'self'; "
       "frame-src 'self'; frame-ancestors 'self'; form-action 'self'; base-uri 'none'")


class SecurityHeaders:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"content-security-policy", CSP.encode()), (b"x-frame-options", b"SAMEORIGIN"),
                            (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin")]
                if not any(k == b"cache-control" for k, _ in headers):
                    headers.append((b"cache-control", b"no-store"))  # pages show private data
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(workspace: Workspace, *, allowed_hosts: Sequence[str] = ("127.0.0.1", "localhost"),
               https_only: bool = False, jobs: SyncJobs | None = None, public_url: str | None = None,
               proxy_login: _auth.ProxyLogin | None = None, clock: Clock = utc_now,
               schedule_poll: float | None = 15.0) -> Starlette:
    """The dashboard over ``workspace``. ``allowed_hosts``: Host headers served (others are refused,
    so a rebound DNS name cannot reach it); ``https_only``: session cookies only over HTTPS (behind a
    TLS proxy); ``public_url``: the address people open, where OAuth logins come back (default: the
    request's own, right on loopback; behind a proxy the dashboard cannot tell it; an ``https://`` one
    also registers webhooks with the sources that have them, see ``_webhooks``); ``proxy_login``:
    trust a reverse proxy's user header. The scheduler checks the schedules every ``schedule_poll``
    seconds on ``clock`` (``None``: not in the background; tests call ``app.state.scheduler.tick()``)."""
    users = Users(workspace.home)
    jobs = jobs or SyncJobs(workspace)
    scheduler = Scheduler(workspace, jobs, clock=clock, poll_seconds=schedule_poll or 15.0)
    metrics = ServerMetrics(workspace, scheduler)
    jobs.listeners.append(metrics.observe)
    web_login = WebLogin(workspace, render, public_url=public_url)
    webhooks = WebhookReceiver(workspace, jobs, public_url)
    if public_url and (public_host := urlsplit(public_url).hostname):
        allowed_hosts = (*allowed_hosts, public_host)  # where the services' webhook deliveries are addressed

    async def home(request: Request) -> Response:
        return RedirectResponse("/sync", status_code=303)

    routes: list[BaseRoute] = [
        Route("/", home, methods=["GET"]),
        *_auth.routes(users, render),
        *_sync_pages.routes(workspace, jobs, scheduler, render),
        *_documents_pages.routes(workspace, render),
        *_history_pages.routes(workspace, metrics, render),
        *web_login.routes(),
        *webhooks.routes(),
        *_connect_pages.routes(workspace, render, web_login),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    middleware = [
        Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts)),
        Middleware(SecurityHeaders),
        Middleware(SessionMiddleware, secret_key=session_secret(workspace.home), session_cookie="invoicesync_session",
                   max_age=SESSION_HOURS * 3600, same_site="strict", https_only=https_only),
        Middleware(_auth.LoginRequired, users=users, proxy=proxy_login),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if schedule_poll is not None:
            scheduler.start()
        webhooks.start()
        yield
        webhooks.stop()
        scheduler.stop()
        jobs.stop()  # a sync in flight stops at its next safe point, as on SIGTERM in the CLI

    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.jobs = jobs
    app.state.scheduler = scheduler
    app.state.metrics = metrics
    app.state.webhooks = webhooks
    return app
