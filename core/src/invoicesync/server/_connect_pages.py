"""+ Import / + Export: pick a plugin, fill in the form made from its settings model, connect.

Plugins that log in with a key connect here. A plugin with ``auth_begin``/``auth_complete`` logs in
through the service's own page in a popup (``_oauth_pages``). Any other login that needs a person
(a browser, a prompt) is stopped and the page says to connect that account with the CLI.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ..accounts import connect
from ..context import PluginKind
from ..errors import InvoiceSyncError, PluginError
from ..export_options import ExportOptions
from ..models import Account, AccountDirection
from ..plugins import LoadedPlugin
from ..secrets import redact
from ..workspace import Workspace
from ._forms import FormField, read_form, settings_fields, validate
from ._oauth_pages import WebLogin, supports_web_login
from ._sync_pages import has_login, notice

KINDS = {"import": PluginKind.SOURCE, "export": PluginKind.TARGET}


class NeedsPerson(Exception):
    """The plugin's login asked for a person (a browser login, a prompt): not possible from this form."""


class WebUI:
    """The ``UI`` a plugin's ``auth`` sees when connecting from the dashboard."""

    interactive = True

    def __init__(self, chosen: Sequence[str] | None) -> None:
        self.chosen = list(chosen) if chosen is not None else None
        self.options: list[tuple[str, str]] | None = None
        self.multiple = True
        self.asked: str | None = None  #: what a person would have had to do

    def echo(self, message: str) -> None:
        pass

    def prompt(self, text: str, *, secret: bool = False, default: str | None = None) -> str:
        if default is not None:
            return default
        self.asked = f"it asked: {text}"
        raise NeedsPerson(self.asked)

    def choose(self, text: str, options: Sequence[tuple[str, str]], *, multiple: bool) -> list[str]:
        if self.chosen is None:
            self.options = list(options)
            self.multiple = multiple
            raise NeedsPerson("choose the companies")
        return [value for value, _ in options if value in self.chosen]

    def open_url(self, url: str) -> bool:
        self.asked = "it logs in through the service's own page (OAuth)"
        raise NeedsPerson(self.asked)


def _option_fields(plugin: LoadedPlugin, values: dict[str, str]) -> list[FormField]:
    """A target's export options (the core's, beside the plugin's settings): empty means no narrowing."""
    if plugin.kind is not PluginKind.TARGET:
        return []
    return settings_fields(ExportOptions, (), values)


def routes(workspace: Workspace, render: Callable[..., Response], web_login: WebLogin) -> list[Route]:
    async def choose_plugin(request: Request) -> Response:
        direction = request.path_params["direction"]
        if direction not in KINDS:
            return render(request, "missing.html", {"what": "page"}, status_code=404)
        plugins = workspace.plugins.of_kind(KINDS[direction])
        return render(request, "connect_choose.html", {"direction": direction, "plugins": plugins})

    def plugin_or_none(request: Request) -> Any:
        direction, name = request.path_params["direction"], request.path_params["plugin"]
        try:
            plugin = workspace.plugins.get(name, KINDS[direction]) if direction in KINDS else None
        except PluginError:
            return None
        return plugin

    async def form_page(request: Request) -> Response:
        plugin = plugin_or_none(request)
        if plugin is None:
            return render(request, "missing.html", {"what": "plugin"}, status_code=404)
        fields = settings_fields(plugin.info.settings, plugin.info.secrets)
        return render(request, "connect_form.html", {
            "plugin": plugin, "fields": fields, "options": _option_fields(plugin, {}),
            "name": request.query_params.get("name") or plugin.name,  # Sync's "Log in again" names the account
            "error": None, "person": None, "web_login": supports_web_login(plugin),
            "companies": None, "multiple": True, "direction": request.path_params["direction"]})

    async def submit(request: Request) -> Response:
        plugin = plugin_or_none(request)
        if plugin is None:
            return render(request, "missing.html", {"what": "plugin"}, status_code=404)
        form = await request.form()
        values = {k: str(v) for k, v in form.items() if k not in ("csrf", "name", "company", "step")}
        fields = settings_fields(plugin.info.settings, plugin.info.secrets, values)
        options = _option_fields(plugin, values)
        name = str(form.get("name") or plugin.name)
        settings, secrets = read_form(fields, values)
        chosen_options, _ = read_form(options, {k: v for k, v in values.items() if v})
        page = {"plugin": plugin, "fields": fields, "options": options, "name": name, "error": None,
                "web_login": supports_web_login(plugin),
                "person": None, "companies": None, "multiple": True, "direction": request.path_params["direction"]}
        settings_ok = validate(plugin.info.settings, fields, settings)
        if not (validate(ExportOptions, options, chosen_options) and settings_ok):
            return render(request, "connect_form.html", page, status_code=400)
        settings.update(chosen_options)
        chosen = form.getlist("company") if form.get("step") == "companies" else None
        ui = WebUI([str(c) for c in chosen] if chosen is not None else None)
        try:
            # the name must be valid before any secret is kept under it
            Account(name=name, plugin=plugin.name, direction=AccountDirection.IMPORT)
            for key, value in secrets.items():
                workspace.secrets(name).set(key, value)
            if chosen is None and (begun := await web_login.begin(request, plugin, name, settings, ui)) is not None:
                return begun
            # the plugin's login talks to its service: off the event loop
            account = await run_in_threadpool(connect, workspace, plugin.name, ui=ui, name=name, settings=settings)
        except NeedsPerson:
            if ui.options is not None:  # step two: the checklist, then the same form again
                page["companies"] = ui.options
                page["multiple"] = ui.multiple
                return render(request, "connect_form.html", page)
            page["person"] = ui.asked
            return render(request, "connect_form.html", page, status_code=400)
        except (InvoiceSyncError, ValueError) as exc:
            page["error"] = redact(str(exc)) if ui.asked is None else None
            page["person"] = ui.asked
            return render(request, "connect_form.html", page, status_code=400)
        request.app.state.webhooks.refresh()  # a new source gets its webhooks now, not at the next sweep
        return notice(request, f"Connected {account.name}.")

    async def relogin(request: Request) -> Response:
        """Sync's "Log in again": the + Import / + Export login for an existing account. Saving it goes
        through ``connect`` like any re-connect, so the companies and settings stay; only the login changes."""
        name = str((await request.form()).get("account", ""))
        account = next((a for a in workspace.accounts() if a.name == name), None)
        if account is None:
            return notice(request, f"There is no account called {name}.")
        try:
            plugin = workspace.plugins.get(account.plugin)
            if not has_login(plugin):
                return notice(request, f"{name} has no login to renew.")
            direction = "import" if plugin.kind is PluginKind.SOURCE else "export"
            if (begun := await web_login.begin(request, plugin, name, {}, WebUI(None), direction=direction)):
                return begun
        except (InvoiceSyncError, ValueError) as exc:
            return notice(request, f"{name}: {redact(str(exc))}")
        # A login with a key: the plugin's form under this name; what it is given replaces the stored secrets.
        return RedirectResponse(f"/connect/{direction}/{plugin.name}?{urlencode({'name': name})}", status_code=303)

    return [
        Route("/accounts/relogin", relogin, methods=["POST"]),
        Route("/connect/{direction}", choose_plugin, methods=["GET"]),
        Route("/connect/{direction}/{plugin}", form_page, methods=["GET"]),
        Route("/connect/{direction}/{plugin}", submit, methods=["POST"]),
    ]
