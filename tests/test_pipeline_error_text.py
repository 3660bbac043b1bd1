"""Unexpected exceptions from plugins are told with their type, and a pydantic error never by the
input it was given (a payload field can be a secret that was never registered as one)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from invoicesync import Account, Company, Context, Document, DocumentRef, PluginKind
from invoicesync.hookspecs import hookimpl
from invoicesync.models import Delivery, PushRequest
from invoicesync.pipeline import EXIT_PARTIAL, run_sync
from invoicesync.plugins import Plugins
from invoicesync.state import DocumentFilter
from invoicesync.testing import MemorySource, MemoryTarget
from invoicesync.workspace import Workspace
from pydantic import BaseModel

PAYLOAD_SECRET = "payload-value-that-is-really-a-password-123"


class Payload(BaseModel):
    amount: int


def invalid_payload() -> None:
    Payload.model_validate({"amount": PAYLOAD_SECRET})


class ValidatingSource(MemorySource):
    @hookimpl
    def fetch_document(self, account: Account, company: Company, ref: DocumentRef, ctx: Context) -> Document:
        if ref.source_id == "m1":
            invalid_payload()
        return MemorySource.fetch_document(self, account, company, ref, ctx)


class ValidatingTarget(MemoryTarget):
    @hookimpl
    def push_documents(self, account: Account, requests: list[PushRequest], ctx: Context) -> Iterator[Delivery]:
        invalid_payload()
        yield from ()


@pytest.fixture
def workspace(workspace_factory: Any) -> Workspace:
    from invoicesync.accounts import connect
    from invoicesync.context import NonInteractiveUI

    plugins = Plugins.from_objects({"memory": (PluginKind.SOURCE, ValidatingSource(3)),
                                    "memtarget": (PluginKind.TARGET, ValidatingTarget())})
    opened: Workspace = workspace_factory(plugins=plugins)
    connect(opened, "memory", ui=NonInteractiveUI())
    connect(opened, "memtarget", ui=NonInteractiveUI())
    return opened


def test_a_pydantic_error_in_a_fetch_or_a_push_keeps_its_type_and_hides_its_input(
        workspace: Workspace, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        report = run_sync(workspace)
    assert report.exit_code == EXIT_PARTIAL, report.as_dict()
    summary = json.dumps(report.as_dict())
    fetch = next(p.message for p in report.problems if p.document == "m1")
    assert fetch.startswith("ValidationError: Payload is invalid: amount:"), fetch
    push = [p.message for p in report.problems if p.document != "m1"]
    assert push and all(m.startswith("ValidationError: ") for m in push), push
    ledger = " ".join(f.error for f in workspace.state.failures("memory", "c1"))
    deliveries = [d.message or "" for document in workspace.state.find_documents(DocumentFilter())
                  for d in workspace.state.deliveries_for(document.id)]
    assert "ValidationError" in ledger and deliveries and all(m.startswith("ValidationError: ") for m in deliveries)
    ledger += " ".join(deliveries)
    for text in (summary, caplog.text, ledger):
        assert PAYLOAD_SECRET not in text
