"""Fixtures: a Billit sandbox on loopback, a workspace with the real plugin, and helpers that
run the hooks the way the runner does (through ``Plugins.call`` and ``Workspace.context``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from invoicesync import Account, AccountDirection, Checkpoint, Company, Deletion, Document, DocumentRef, PluginKind
from invoicesync.context import Context
from invoicesync.plugins import Plugins
from invoicesync.sandbox import RunningSandbox
from invoicesync.testing import ScriptedUI, loopback_redirect_uri
from invoicesync.workspace import Workspace
from invoicesync_billit import plugin as billit_plugin
from invoicesync_billit.sandbox import BillitSandbox


@dataclass
class Listing:
    refs: list[DocumentRef] = field(default_factory=list)
    deletions: list[Deletion] = field(default_factory=list)
    checkpoints: list[str] = field(default_factory=list)

    @property
    def ids(self) -> list[str]:
        return [r.source_id for r in self.refs]

    @property
    def cursor(self) -> str | None:
        return self.checkpoints[-1] if self.checkpoints else None


@dataclass
class Harness:
    """One Billit account in an isolated workspace, pointed at a running sandbox."""

    app: BillitSandbox
    server: RunningSandbox
    workspace: Workspace
    account: Account

    def context(self, ui: Any = None, options: dict[str, Any] | None = None) -> Context:
        return self.workspace.context(self.account, ui=ui, options=options)

    def call(self, hook: str, ctx: Context | None = None, **kwargs: Any) -> Any:
        ctx = ctx or self.context()
        return self.workspace.plugins.call("billit", hook, account=self.account, ctx=ctx, **kwargs)

    def connect(self, ui: Any = None, options: dict[str, Any] | None = None) -> list[Company]:
        companies = self.call("auth", self.context(ui or ScriptedUI(), options))
        self.account = self.account.model_copy(update={"companies": companies})
        self.workspace.state.save_account(self.account)
        return companies

    @property
    def company(self) -> Company:
        return self.account.companies[0]

    def list(self, cursor: str | None = None, company: Company | None = None,
             ctx: Context | None = None) -> Listing:
        listing = Listing()
        for item in self.call("list_documents", ctx, company=company or self.company, cursor=cursor):
            if isinstance(item, DocumentRef):
                listing.refs.append(item)
            elif isinstance(item, Deletion):
                listing.deletions.append(item)
            else:
                assert isinstance(item, Checkpoint)
                listing.checkpoints.append(item.cursor)
        return listing

    def fetch(self, source_id: str, ctx: Context | None = None, company: Company | None = None) -> Document:
        ref = DocumentRef(source_id=source_id)
        return self.call("fetch_document", ctx, company=company or self.company, ref=ref)

    def secret(self, key: str) -> str | None:
        return self.workspace.secrets(self.account.name).get(key)


@pytest.fixture
def billit(workspace_factory: Callable[..., Workspace],
           serve_sandbox: Callable[..., RunningSandbox]) -> Iterator[Callable[..., Harness]]:
    """``billit(documents=50, oauth=False, **sandbox_kwargs)`` -> a ``Harness``."""

    def make(documents: int = 50, *, oauth: bool = False, settings: dict[str, Any] | None = None,
             **kwargs: Any) -> Harness:
        app = BillitSandbox(documents=documents, **kwargs)
        server = serve_sandbox(app)
        plugins = Plugins.from_objects({"billit": (PluginKind.SOURCE, billit_plugin)})
        workspace = workspace_factory(plugins)
        base = app.oauth_settings(server.url) if oauth else app.account_settings(server.url)
        if oauth:  # the sandbox takes registered redirect URIs only: register one on a free port
            redirect_uri = loopback_redirect_uri()
            app.oauth.register_redirect(redirect_uri)
            base = {**base, "redirect_uri": redirect_uri}
        account = Account(name="books", plugin="billit", direction=AccountDirection.IMPORT,
                          settings={**base, **(settings or {})})
        workspace.state.save_account(account)
        if not oauth:
            for key, value in app.account_secrets().items():
                workspace.secrets(account.name).set(key, value)
        return Harness(app, server, workspace, account)

    yield make
