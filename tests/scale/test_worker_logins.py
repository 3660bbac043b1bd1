"""A Celery worker logs in to Entra once for all its export tasks: each task has a context of its
own, and the msal token cache lives as long as the worker's workspace (``Context.shared_resource``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from invoicesync.accounts import connect
from invoicesync.context import NonInteractiveUI
from invoicesync.distributed import CelerySettings, TaskLeases, WorkerRuntime
from invoicesync.distributed._tasks import export_batch, import_chunk
from invoicesync.sandbox import serve
from invoicesync.workspace import Workspace
from invoicesync_billit.sandbox import BillitSandbox
from invoicesync_dynamics365.sandbox import DEMO_SECRET, BusinessCentralSandbox

TOKEN = r"/oauth2/v2\.0/token$"


def api_calls(bc: BusinessCentralSandbox) -> int:
    return sum(bc.count(method, r"/api/v2\.0/") for method in ("GET", "POST", "PATCH", "DELETE"))


def test_a_worker_fetches_one_entra_token_for_all_its_export_tasks(
        tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVOICESYNC_SECRETS", "file")
    billit = BillitSandbox(documents=4, companies=1, seed=21)
    bc = BusinessCentralSandbox()
    company = bc.add_company("CRONUS BE")
    running = [serve(billit), serve(bc, tls=True)]
    bc.ca_file = str(running[1].ca_file)
    home = tmp_path / "home"
    home.mkdir()
    (home / "invoicesync.toml").write_text(f'state_url = "{postgres_url}"\nshared_budgets = false\n')
    try:
        with Workspace.open(home) as coordinator:  # connect and import: another process in real life
            for key, value in billit.account_secrets().items():
                coordinator.secrets("billit").set(key, value)
            coordinator.secrets("bc").set("client_secret", DEMO_SECRET)
            party = str(billit.companies[0].party_id)
            connect(coordinator, "billit", ui=NonInteractiveUI(), name="billit",
                    settings=billit.account_settings(running[0].url), companies=[party])
            connect(coordinator, "dynamics365", ui=NonInteractiveUI(), name="bc",
                    settings=bc.account_settings(running[1].url), companies=[company.id])
            coordinator.plugins.load_all()
            leases = TaskLeases(postgres_url)
            try:
                changed = import_chunk(WorkerRuntime(coordinator, CelerySettings.from_config(coordinator.config),
                                                     leases), "billit", party, False)["changed"]
            finally:
                leases.close()
        assert len(changed) == 4

        with Workspace.open(home) as worker:
            worker.plugins.load_all()
            runtime = WorkerRuntime(worker, CelerySettings.from_config(worker.config), TaskLeases(postgres_url))
            before = bc.count("POST", TOKEN)
            calling = 0  # tasks that called Business Central (a sales document is skipped unsent)
            try:
                for document_id in changed:  # a task per document, each with its own context
                    calls = api_calls(bc)
                    answer = export_batch(runtime, "bc", [document_id])
                    assert answer["report"].get("problems", []) == [], answer
                    calling += api_calls(bc) > calls
            finally:
                runtime.leases.close()
            assert calling >= 2 and bc.count("POST", TOKEN) == before + 1
    finally:
        for server in running:
            server.stop()
