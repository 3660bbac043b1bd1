"""Fixtures: a TLS Business Central sandbox and a workspace with a dynamics365 account on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
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
    DocumentKind,
    FileRef,
    FileRole,
    Party,
    PluginKind,
    PushRequest,
)
from invoicesync.http import Budget
from invoicesync.plugins import Plugins
from invoicesync.sandbox import RunningSandbox
from invoicesync.workspace import Workspace
from invoicesync_dynamics365 import plugin
from invoicesync_dynamics365.sandbox import DEMO_SECRET, BusinessCentralSandbox
from invoicesync_dynamics365.sandbox._store import CompanyData


@dataclass
class FakeClock:
    """A monotonic clock that only moves when something sleeps on it."""

    at: float = 1000.0
    waits: list[float] = field(default_factory=list)

    def now(self) -> float:
        return self.at

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.at += seconds


@dataclass
class BC:
    """One sandbox, one workspace, one account; helpers to push and to look inside BC."""

    app: BusinessCentralSandbox
    running: RunningSandbox
    workspace: Workspace
    account: Account
    company: CompanyData

    def context(self, **kwargs: Any) -> Context:
        return self.workspace.context(self.account, **kwargs)

    def push(self, *documents: Document, previous: Delivery | None = None, clock: FakeClock | None = None,
             files: list[FileRef] | None = None, **kwargs: Any) -> list[Delivery]:
        ctx = self.context(**kwargs)
        if clock is not None:
            # Retries and the account budget (which holds a Retry-After pause) both wait on the
            # fake clock: the waits are recorded and cost no wall time.
            ctx.sleep = clock.sleep
            plugin_info = plugin.plugin_info()
            ctx.budget = Budget(plugin_info.budget_requests, plugin_info.budget_period, clock=clock.now,
                                sleep=clock.sleep)
        requests = [PushRequest(document=d, previous=previous, files=files or []) for d in documents]
        try:
            return list(plugin.push_documents(self.account, requests, ctx))
        finally:
            ctx.close()

    def set(self, **settings: Any) -> None:
        self.account = self.account.model_copy(update={"settings": {**self.account.settings, **settings}})

    def file(self, name: str, content: bytes, media_type: str = "application/pdf",
             role: FileRole = FileRole.ATTACHMENT) -> FileRef:
        return self.context().blobs.put(iter([content]), name=name, media_type=media_type, role=role)

    def invoices(self) -> list[dict[str, Any]]:
        return list(self.company.documents["purchaseInvoices"].values())

    def attachments(self, entity: str = "documentAttachments") -> list[dict[str, Any]]:
        return list(self.company.attachments[entity].values())

    def document(self, number: str = "INV-2026-001", *, supplier: str = "Brouwerij De Klok NV",
                 vat: str | None = "BE0412345678", kind: DocumentKind = DocumentKind.INVOICE,
                 direction: Direction = Direction.PURCHASE, pdf: bytes | None = None,
                 ubl: bytes | None = None) -> Document:
        ctx = self.context()
        files = [ctx.blobs.put(iter([pdf or f"%PDF-1.7 invoice {number}\n".encode()]), name=f"{number}.pdf",
                               media_type="application/pdf", role=FileRole.PDF)]
        if ubl is not None:
            files.append(ctx.blobs.put(iter([ubl]), name=f"{number}.xml", media_type="application/xml",
                                       role=FileRole.UBL))
        company = Company(id="billit-1", name="Acme BV")
        return Document(
            id=Document.make_id("billit", "src", company.id, number), source="billit", account="src",
            company=company, source_id=number, kind=kind, direction=direction, number=number,
            issue_date=date(2026, 3, 2), due_date=date(2026, 4, 1), currency="EUR",
            amount_excl_vat=Decimal("100.00"), amount_vat=Decimal("21.00"), amount_incl_vat=Decimal("121.00"),
            counterparty=Party(name=supplier, vat_number=vat), files=files,
        )


@pytest.fixture
def make_bc(workspace_factory: Callable[..., Workspace],
            serve_sandbox: Callable[..., RunningSandbox]) -> Iterator[Callable[..., BC]]:
    def make(**options: Any) -> BC:
        app = BusinessCentralSandbox(**options)
        company = app.add_company("CRONUS BE")
        company.add_vendor("Brouwerij De Klok NV", "BE 0412.345.678")
        company.add_vendor("Office Supplies BV", "")
        running = serve_sandbox(app, tls=True)
        app.ca_file = str(running.ca_file)
        workspace = workspace_factory(plugins=Plugins.from_objects({"dynamics365": (PluginKind.TARGET, plugin)}))
        workspace.secrets("bc").set("client_secret", DEMO_SECRET)
        account = Account(name="bc", plugin="dynamics365", direction=AccountDirection.EXPORT,
                          settings={k: v for k, v in app.account_settings(running.url).items()
                                    if k != "create_missing_vendors"},
                          companies=[Company(id=company.id, name=company.name)])
        return BC(app, running, workspace, account, company)

    yield make


@pytest.fixture
def bc(make_bc: Callable[..., BC]) -> BC:
    return make_bc()
