"""The dashboard's webhook endpoint, against the real Billit plugin and its sandbox: registration at
start, only genuine deliveries acted on (signature, time, no replay), one debounced sync of the
company named, secrets kept as secrets, and the hooks removed at disconnect."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from invoicesync import PluginKind
from invoicesync.accounts import connect_to_sandbox, disconnect
from invoicesync.plugins import Plugins
from invoicesync.sandbox import RunningSandbox
from invoicesync.server import Users, create_app
from invoicesync.server._webhooks import WebhookReceiver
from invoicesync.state import DocumentFilter
from invoicesync.testing import MemoryTarget
from invoicesync.workspace import Workspace
from starlette.testclient import TestClient

from .conftest import ADMIN, PASSWORD

billit_plugin = pytest.importorskip("invoicesync_billit.plugin")
from invoicesync_billit.sandbox import BillitSandbox  # noqa: E402

PUBLIC = "https://testserver"


@dataclass
class Hooked:
    client: TestClient
    workspace: Workspace
    receiver: WebhookReceiver
    billit: BillitSandbox

    def secret(self, party: int, update_type: str = "U") -> str:
        return next(h["Secret"] for h in self.billit.webhooks.values()
                    if h["CompanyID"] == party and h["EntityUpdateType"] == update_type)

    def deliver(self, party: int, order_id: int, *, t: int | None = None, secret: str | None = None,
                headers: dict[str, str] | None = None, path: str | None = None) -> Any:
        body = json.dumps({"UpdatedEntityID": order_id, "UpdatedEntityType": "Order",
                           "WebhookUpdateTypeTC": "U"}).encode()
        t = int(time.time()) if t is None else t
        digest = hmac.new((secret or self.secret(party)).encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
        sent = {"Content-Type": "application/json", "Billit-Signature": f"t={t},s={digest}"} if headers is None \
            else headers
        return self.client.post(path or f"/webhooks/books/{party}", content=body, headers=sent)


@pytest.fixture
def hooked(workspace_factory: Callable[..., Workspace],
           serve_sandbox: Callable[..., RunningSandbox]) -> Iterator[Hooked]:
    app = BillitSandbox(documents=4, companies=2, seed=7)
    plugins = Plugins.from_objects({"billit": (PluginKind.SOURCE, billit_plugin),
                                    "memtarget": (PluginKind.TARGET, MemoryTarget())})
    workspace = workspace_factory(plugins)
    connect_to_sandbox(workspace, "billit", serve_sandbox(app), name="books")
    from invoicesync.accounts import connect
    from invoicesync.context import NonInteractiveUI

    connect(workspace, "memtarget", ui=NonInteractiveUI())
    Users(workspace.home).add(ADMIN, PASSWORD)
    dashboard = create_app(workspace, public_url=PUBLIC)
    receiver: WebhookReceiver = dashboard.state.webhooks
    receiver.debouncer.seconds = 0.3
    with TestClient(dashboard) as client:
        receiver.register_all()  # the start's own sweep may be at it too: the lock makes one of them do it
        yield Hooked(client, workspace, receiver, app)


def _wait(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_start_registers_order_insert_and_update_hooks_for_each_company_once(hooked: Hooked) -> None:
    parties = [c.party_id for c in hooked.billit.companies]
    hooks = sorted((h["CompanyID"], h["EntityType"], h["EntityUpdateType"], h["WebhookURL"])
                   for h in hooked.billit.webhooks.values())
    assert hooks == sorted((p, "Order", kind, f"{PUBLIC}/webhooks/books/{p}") for p in parties for kind in "IU")
    hooked.receiver.register_all()  # again: already registered at this address, nothing new
    assert len(hooked.billit.webhooks) == 4


def test_deliveries_within_the_window_make_one_sync_of_that_company_only(hooked: Hooked) -> None:
    first, second = (c.party_id for c in hooked.billit.companies)
    orders = list(hooked.billit.companies[0].orders)
    for order_id in orders[:3]:  # no session cookie, no CSRF token: the signature is the credential
        assert hooked.deliver(first, order_id).status_code == 200
    _wait(lambda: bool(hooked.receiver.debouncer.started) and hooked.receiver.debouncer.started[-1].done.is_set())
    time.sleep(0.5)  # a second sync, had the window not joined them, would have started by now
    assert len(hooked.receiver.debouncer.started) == 1
    job = hooked.receiver.debouncer.started[0]
    assert job.companies == {"books": (str(first),)}
    assert job.report is not None and job.report.exit_code == 0, job.report.as_dict() if job.report else job.error
    companies = {d.company.id for d in hooked.workspace.state.find_documents(DocumentFilter())}
    assert companies == {str(first)}  # the other company waits for its own webhook (or a scheduled run)
    assert str(second) not in companies


def _refusal_cases() -> list[tuple[str, dict[str, Any]]]:
    now = int(time.time())
    return [
        ("no signature header", {"headers": {"Content-Type": "application/json"}}),
        ("a malformed header", {"headers": {"Billit-Signature": "sha256=abc"}}),
        ("a wrong secret", {"secret": "not the secret"}),
        ("signed too long ago", {"t": now - 3600}),
        ("signed in the future", {"t": now + 3600}),
        ("an unknown company", {"path": "/webhooks/books/999"}),
        ("an unknown account", {"path": "/webhooks/nobody/1"}),
    ]


@pytest.mark.parametrize(("case", "kwargs"), _refusal_cases(), ids=[c for c, _ in _refusal_cases()])
def test_what_is_not_a_genuine_fresh_delivery_is_refused_and_syncs_nothing(
        hooked: Hooked, case: str, kwargs: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    party = hooked.billit.companies[0].party_id
    with caplog.at_level(logging.INFO, logger="invoicesync"):
        answer = hooked.deliver(party, next(iter(hooked.billit.companies[0].orders)), **kwargs)
    assert answer.status_code == 401 and answer.text == "refused", case
    assert hooked.receiver.debouncer.due == {} and hooked.receiver.debouncer.started == []
    assert "refused" in caplog.text
    for hook in hooked.billit.webhooks.values():
        assert hook["Secret"] not in caplog.text


def test_a_replayed_delivery_is_refused_even_by_a_restarted_dashboard(hooked: Hooked) -> None:
    party = hooked.billit.companies[0].party_id
    order_id = next(iter(hooked.billit.companies[0].orders))
    t = int(time.time())
    assert hooked.deliver(party, order_id, t=t).status_code == 200
    assert hooked.deliver(party, order_id, t=t).status_code == 401  # the same request again
    restarted = create_app(hooked.workspace, public_url=PUBLIC)  # remembers through the state
    with TestClient(restarted) as client:
        again = Hooked(client, hooked.workspace, restarted.state.webhooks, hooked.billit)
        assert again.deliver(party, order_id, t=t).status_code == 401
    assert hooked.deliver(party, order_id, t=t + 1).status_code == 200  # a new delivery is not a replay


def test_the_signing_secrets_are_kept_as_secrets_never_in_the_state(hooked: Hooked) -> None:
    secrets_file = hooked.workspace.home / "secrets.json"
    state = (hooked.workspace.home / "state.db").read_bytes()
    for path in hooked.workspace.home.glob("state.db*"):
        state += path.read_bytes()
    for hook in hooked.billit.webhooks.values():
        assert hook["Secret"].encode() not in state
        assert hook["Secret"] in secrets_file.read_text()
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600


def test_disconnect_removes_the_hooks_at_billit_and_their_secrets(hooked: Hooked) -> None:
    secrets = [h["Secret"] for h in hooked.billit.webhooks.values()]
    disconnect(hooked.workspace, "books")
    assert hooked.billit.webhooks == {}
    assert hooked.workspace.state.webhooks("books") == []
    stored = (hooked.workspace.home / "secrets.json").read_text()
    assert not any(secret in stored for secret in secrets)


def test_without_an_https_public_url_nothing_is_registered(workspace_factory: Callable[..., Workspace],
                                                            serve_sandbox: Callable[..., RunningSandbox]) -> None:
    app = BillitSandbox(documents=1, companies=1)
    workspace = workspace_factory(Plugins.from_objects({"billit": (PluginKind.SOURCE, billit_plugin)}))
    connect_to_sandbox(workspace, "billit", serve_sandbox(app), name="books")
    for public_url in (None, "http://127.0.0.1:8765"):  # plain http: Billit would refuse to deliver there
        dashboard = create_app(workspace, public_url=public_url)
        with TestClient(dashboard):
            dashboard.state.webhooks.register_all()
        assert app.webhooks == {} and workspace.state.webhooks() == []


def test_a_company_named_while_another_process_holds_the_runner_lock_is_synced_once_it_is_free(
        hooked: Hooked, monkeypatch: pytest.MonkeyPatch) -> None:
    from invoicesync.server import _webhooks
    from invoicesync.state import RunnerInfo, SqliteStore

    monkeypatch.setattr(_webhooks, "BUSY_RETRY_SECONDS", 0.3)
    party = hooked.billit.companies[0].party_id
    other = SqliteStore(hooked.workspace.home / "state.db")  # as a CLI sync would hold it
    try:
        with other.runner_lock(RunnerInfo.current()):
            assert hooked.deliver(party, next(iter(hooked.billit.companies[0].orders))).status_code == 200
            started = hooked.receiver.debouncer.started
            _wait(lambda: bool(started) and started[0].done.is_set())
            first = started[0]
            assert first.report is not None and first.report.busy  # found the lock held: nothing done
    finally:
        other.close()
    _wait(lambda: len(hooked.receiver.debouncer.started) == 2 and hooked.receiver.debouncer.started[1].done.is_set())
    again = hooked.receiver.debouncer.started[1]
    assert again.companies == {"books": (str(party),)} and again.report is not None and not again.report.busy
    assert {d.company.id for d in hooked.workspace.state.find_documents(DocumentFilter())} == {str(party)}
