"""Fixtures: a Drive sandbox on loopback and a workspace with a ``gdrive`` account pointed at it."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
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
from invoicesync.workspace import Workspace
from invoicesync_gdrive import plugin as gdrive_plugin
from invoicesync_gdrive.sandbox import DriveSandbox

COMPANY = Company(id="c1", name="Acme BV")


@dataclass
class DriveEnv:
    app: DriveSandbox
    server: RunningSandbox
    workspace: Workspace
    account: Account
    #: Waits core's retries asked for: recorded, not slept, so backoff costs no wall time.
    sleeps: list[float] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    def configure(self, **settings: Any) -> None:
        self.account = self.account.model_copy(update={"settings": {**self.account.settings, **settings}})

    def context(self, **kwargs: Any) -> Context:
        ctx = self.workspace.context(self.account, **kwargs)
        ctx.sleep = self.sleeps.append
        return ctx

    def document(self, n: int, pdf: bytes | Iterable[bytes] | None = None, *, ubl: bytes | None = None,
                 counterparty: str = "Supplier NV", number: str | None = None,
                 attachments: Iterable[tuple[str, str, bytes]] = (), with_pdf: bool = True) -> Document:
        blobs = self.workspace.blobs
        files = []
        content = pdf if pdf is not None else f"%PDF-1.4 invoice {n}\n".encode()
        chunks = iter([content]) if isinstance(content, bytes) else iter(content)
        if with_pdf:
            files.append(blobs.put(chunks, name=f"INV-{n}.pdf", media_type="application/pdf", role=FileRole.PDF))
        if ubl is not None:
            files.append(blobs.put(iter([ubl]), name=f"INV-{n}.xml", media_type="application/xml", role=FileRole.UBL))
        for name, media_type, data in attachments:
            files.append(blobs.put(iter([data]), name=name, media_type=media_type, role=FileRole.ATTACHMENT))
        return Document(
            id=Document.make_id("billit", "acme", COMPANY.id, str(n)), source="billit", account="acme",
            company=COMPANY, source_id=str(n), direction=Direction.PURCHASE, number=number or f"INV-{n:04d}",
            issue_date=date(2026, 1 + n % 12, 1), amount_incl_vat=Decimal("121.00"),
            counterparty=Party(name=counterparty), files=files,
        )

    def push(self, documents: list[Document], *, record: bool = True, dry_run: bool = False,
             previous: bool = True, roles: set[FileRole] | None = None) -> list[Delivery]:
        """Push like the runner does: hand over the ledger's last record (and, with ``roles``, only
        those files, as a narrowed ``files`` option does), record the outcome."""
        state = self.workspace.state
        requests = [PushRequest(document=d, previous=state.get_delivery(d.id, self.account.name) if previous else None,
                                files=[f for f in d.files if roles is None or f.role in roles])
                    for d in documents]
        ctx = self.context(dry_run=dry_run)
        try:
            deliveries = list(gdrive_plugin.push_documents(account=self.account, requests=requests, ctx=ctx))
        finally:
            ctx.close()
        if record and not dry_run:
            for delivery in deliveries:
                state.record_delivery(delivery)
        return deliveries

    def uploads(self) -> int:
        """Content writes the sandbox has seen (creates and updates through the upload endpoint)."""
        return self.app.count("POST", r"^/upload/") + self.app.count("PATCH", r"^/upload/")

    def live_files(self) -> list[Any]:
        """Every file (not folder) that is not in the trash."""
        with self.app.store.lock:
            return [f for f in self.app.store.files.values()
                    if not f.trashed and f.mime_type != "application/vnd.google-apps.folder"]

    def files_named(self, name: str) -> list[Any]:
        with self.app.store.lock:
            return [f for f in self.app.store.files.values() if f.name == name and not f.trashed]


@pytest.fixture
def drive_app() -> Iterator[DriveSandbox]:
    app = DriveSandbox()
    yield app
    app.store.close()


@pytest.fixture
def drive(drive_app: DriveSandbox, serve_sandbox: Any, workspace_factory: Any) -> DriveEnv:
    server = serve_sandbox(drive_app)
    plugins = Plugins.from_objects({"gdrive": (PluginKind.TARGET, gdrive_plugin)})
    workspace = workspace_factory(plugins=plugins)
    settings = {**drive_app.account_settings(server.url), "resumable_threshold": 1024 * 1024,
                "chunk_size": 512 * 1024}
    account = Account(name="drive", plugin="gdrive", direction=AccountDirection.EXPORT, settings=settings)
    secrets = workspace.secrets(account.name)
    for key, value in drive_app.account_secrets().items():
        secrets.set(key, value)
    return DriveEnv(drive_app, server, workspace, account)


def stored_token(env: DriveEnv) -> dict[str, Any]:
    raw = env.workspace.secrets(env.account.name).get("oauth_token")
    assert raw
    return dict(json.loads(raw))
