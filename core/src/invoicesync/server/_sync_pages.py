"""Sync: the synced accounts (imports and exports), their schedules, "Sync now", live progress, Disconnect
(and "Log in again", whose route lives with the connect pages)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from ..accounts import disconnect
from ..errors import InvoiceSyncError, PluginError
from ..models import AccountDirection
from ..plugins import LoadedPlugin
from ..schedules import parse_form
from ..secrets import redact
from ..workspace import Workspace
from ._jobs import SyncJobs
from ._scheduler import Planned, Scheduler

POLL_SECONDS = 0.5


def account_rows(workspace: Workspace, scheduler: Scheduler | None = None) -> list[dict[str, Any]]:
    plans = {p.account: p for p in scheduler.plan()} if scheduler else {}
    rows = []
    for account in workspace.accounts():
        known = workspace.direction_known(account)
        rows.append({
            "name": account.name, "plugin": account.plugin, "origin": account.origin,
            "direction": account.direction.value if known else None,
            "companies": [c.name or c.id for c in account.companies],
            "last_sync": workspace.state.last_sync(account.name),
            "problem": workspace.account_problem(account),
            "schedule": _schedule_view(plans.get(account.name)),
            "relogin": _can_log_in_again(workspace, account.plugin),
        })
    return rows


def has_login(plugin: LoadedPlugin) -> bool:
    """A login "Log in again" can renew: the service's own page (OAuth) or secrets typed into the form."""
    return {"auth_begin", "auth_complete"} <= set(plugin.hooks) or bool(plugin.info.secrets)


def _can_log_in_again(workspace: Workspace, plugin_name: str) -> bool:
    try:
        return has_login(workspace.plugins.get(plugin_name))
    except PluginError:  # a plugin no longer installed: Sync shows the account's problem instead
        return False


def _schedule_view(plan: Planned | None) -> dict[str, Any] | None:
    if plan is None:
        return None
    record = plan.record
    return {
        "text": plan.text, "source": plan.source,
        "next_run": plan.next_run.isoformat(timespec="seconds") if plan.next_run else None,
        "last_at": record.last_finished_at.isoformat(timespec="seconds") if record and record.last_finished_at
        else None,
        "last_result": (record.last_result or {}) if record else {},
    }


def routes(workspace: Workspace, jobs: SyncJobs, scheduler: Scheduler, render: Callable[..., Response]) -> list[Route]:
    async def sync_page(request: Request) -> Response:
        rows = account_rows(workspace, scheduler)
        job = jobs.current
        return render(request, "sync.html", {
            "imports": [r for r in rows if r["direction"] == AccountDirection.IMPORT.value],
            "exports": [r for r in rows if r["direction"] != AccountDirection.IMPORT.value],
            "job": job.state() if job else None,
            "notice": request.session.pop("notice", None),
        })

    async def sync_now(request: Request) -> Response:
        form = await request.form()
        account = str(form.get("account", ""))
        if account and account not in {a.name for a in workspace.accounts()}:
            return notice(request, f"There is no account called {account}.")
        jobs.start([account] if account else [])
        return RedirectResponse("/sync#progress", status_code=303)

    async def events(request: Request) -> Response:
        async def stream() -> AsyncIterator[str]:
            while True:
                job = jobs.current
                state = job.state() if job else None
                if state is None or not state["running"]:
                    yield f"event: done\ndata: {redact(json.dumps(state))}\n\n"
                    return
                yield f"data: {redact(json.dumps(state))}\n\n"
                if await request.is_disconnected():
                    return
                await asyncio.sleep(POLL_SECONDS)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    async def remove(request: Request) -> Response:
        form = await request.form()
        try:  # off the event loop: removing a source's webhooks talks to its service
            account = await run_in_threadpool(disconnect, workspace, str(form.get("account", "")))
        except InvoiceSyncError as exc:
            return notice(request, str(exc))
        return notice(request, f"Disconnected {account.name}.")

    async def set_schedule(request: Request) -> Response:
        form = await request.form()
        account = str(form.get("account", ""))
        try:
            schedule = parse_form(str(form.get("schedule", "")))
            scheduler.set_schedule(account, schedule)
        except InvoiceSyncError as exc:
            return notice(request, f"{account}: {exc}")
        if schedule is None:
            return notice(request, f"{account} now syncs only when asked.")
        when = f"on cron {schedule.cron} (UTC)" if schedule.cron else f"every {schedule.describe()}"
        return notice(request, f"{account} now syncs {when}.")

    return [
        Route("/sync", sync_page, methods=["GET"]),
        Route("/sync/schedule", set_schedule, methods=["POST"]),
        Route("/sync/run", sync_now, methods=["POST"]),
        Route("/sync/events", events, methods=["GET"]),
        Route("/accounts/disconnect", remove, methods=["POST"]),
    ]



def notice(request: Request, text: str) -> Response:
    """Back to Sync with a one-time message, kept in the session (never taken from the URL, so a link
    cannot put words in the dashboard's mouth)."""
    request.session["notice"] = redact(text)
    return RedirectResponse("/sync", status_code=303)
