"""Fixtures: a Dropbox sandbox on loopback and a workspace with a Dropbox account pointed at it."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from invoicesync import (
    Account,
    AccountDirection,
    Company,
    Context,
    Delivery,
    Direction,
    Document,
    FileRole,
    Party,
    PluginKind,
    PushRequest,
)
from invoicesync.plugins import Plugins
from invoicesync.sandbox import RunningSandbox
from invoicesync.testing import loopback_redirect_uri
from invoicesync.workspace import Workspace
from invoicesync_dropbox import plugin as dropbox_plugin
from invoicesync_dropbox.sandbox import DropboxSandbox
from invoicesync_dropbox.sandbox.store import Entry

WRITE_ROUTES = r"^/2/files/(upload|upload_session/(start|append_v2|finish|finish_batch_v2)|create_folder_v2)$"
COMPANY = Company(id="c1", name="Acme BV")


@dataclass
class DropboxEnv:
    app: DropboxSandbox
    server: RunningSandbox
    workspace: Workspace
    account: Account

    @property
    def url(self) -> str:
        return self.server.url

    def configure(self, **settings: Any) -> None:
        self.account = self.account.model_copy(update={"settings": {**self.account.settings, **settings}})

    def context(self, **kwargs: Any) -> Context:
        return self.workspace.context(self.account, **kwargs)

    def document(self, number: str, *, pdf: bytes | Iterable[bytes] | None = None, ubl: bytes | None = None,
                 counterparty: str = "Supplier NV", direction: Direction = Direction.PURCHASE,
                 issue: date = date(2026, 1, 15),
                 attachments: Iterable[tuple[str, str, bytes]] = ()) -> Document:
        files = []
        blobs = self.workspace.blobs
        if pdf is not None:
            chunks = iter([pdf]) if isinstance(pdf, bytes) else iter(pdf)
            files.append(blobs.put(chunks, name=f"{number}.pdf", media_type="application/pdf", role=FileRole.PDF))
        if ubl is not None:
            files.append(blobs.put(iter([ubl]), name=f"{number}.xml", media_type="application/xml",
                                   role=FileRole.UBL))
        for name, media_type, content in attachments:
            files.append(blobs.put(iter([content]), name=name, media_type=media_type, role=FileRole.ATTACHMENT))
        return Document(
            id=Document.make_id("memory", "src", COMPANY.id, number), source="memory", account="src",
            company=COMPANY, source_id=number, direction=direction, number=number, issue_date=issue,
            amount_incl_vat=Decimal("121.00"), counterparty=Party(name=counterparty), files=files,
        )

    def push(self, items: Iterable[Document | PushRequest], **context: Any) -> list[Delivery]:
        requests = [i if isinstance(i, PushRequest) else PushRequest(document=i) for i in items]
        ctx = self.context(**context)
        try:
            deliveries = list(self.workspace.plugins.call("dropbox", "push_documents", account=self.account,
                                                          requests=requests, ctx=ctx))
        finally:
            ctx.close()
        # The push reports each document once it is settled, in any order: read them as given.
        order = {request.document.id: i for i, request in enumerate(requests)}
        return sorted(deliveries, key=lambda d: order.get(d.document_id, len(order)))

    def writes(self) -> int:
        return self.app.count("POST", WRITE_ROUTES)

    def requests_to_dropbox(self) -> list[str]:
        """The paths of every API request the sandbox answered, in order (OAuth excluded)."""
        return [path for _, path, _ in self.app.requests if path.startswith("/2/")]

    def files(self) -> list[Entry]:
        return [e for e in self.app.namespace.entries.values() if e.kind == "file"]

    def occupy(self, path: str, data: bytes, mode: dict[str, str] | None = None) -> None:
        """Someone else's file at ``path``, written straight into the sandbox's store."""
        handle, name = tempfile.mkstemp(dir=self.app.root)
        with open(handle, "wb") as out:
            out.write(data)
        self.app.namespace.commit(path, mode or {".tag": "add"}, Path(name), len(data))

    def stored(self, path: str) -> bytes:
        entry = self.app.namespace.get(path)
        assert entry is not None and entry.blob is not None, f"nothing stored at {path}"
        return entry.blob.read_bytes()


@pytest.fixture
def make_env(serve_sandbox: Callable[[DropboxSandbox], RunningSandbox],
             workspace_factory: Callable[..., Workspace]) -> Callable[..., DropboxEnv]:
    def make(**sandbox_options: Any) -> DropboxEnv:
        app = DropboxSandbox(**{"retry_after": 0, **sandbox_options})
        server = serve_sandbox(app)
        plugins = Plugins.from_objects({"dropbox": (PluginKind.TARGET, dropbox_plugin)})
        workspace = workspace_factory(plugins=plugins)
        # The sandbox takes registered redirect URIs only: register one on a port free now.
        redirect_uri = loopback_redirect_uri()
        app.oauth.redirects.register(redirect_uri)
        account = Account(name="dbx", plugin="dropbox", direction=AccountDirection.EXPORT,
                          settings={**app.account_settings(server.url), "redirect_uri": redirect_uri})
        for key, value in app.account_secrets().items():
            workspace.secrets(account.name).set(key, value)
        return DropboxEnv(app, server, workspace, account)

    return make


@pytest.fixture
def env(make_env: Callable[..., DropboxEnv]) -> DropboxEnv:
    return make_env()
