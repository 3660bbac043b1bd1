"""What a Celery task costs in PostgreSQL statements: each is a round trip, and a worker's CPU per
task (and the server's) grows with them. Pinned per task, so a change that adds one shows here.

Budgets are kept out (``shared_budgets = false``): their statements follow the HTTP requests, which
the plugin decides, not the task."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from invoicesync.accounts import connect
from invoicesync.context import NonInteractiveUI
from invoicesync.distributed import CelerySettings, TaskLeases, WorkerRuntime
from invoicesync.distributed._tasks import export_batch, import_chunk
from invoicesync.sandbox import serve
from invoicesync.workspace import Workspace
from invoicesync_billit.sandbox import BillitSandbox

#: Statements of an import task of one company with one new document: its account, both leases (in
#: one), its cursor, its failures, the login, the plugin's first-sync mark (read, set), the document,
#: the cursor saved, the leases freed.
IMPORT_STATEMENTS = 10
#: Statements of an export task, per document: its claim, its version and ledger row read under the
#: claim (one query), the intent, the outcome with the claim released (one statement).
EXPORT_PER_DOCUMENT = 4
#: ...and per task: its account, the runner lease, the claims held elsewhere, the batch's documents,
#: the lease freed.
EXPORT_PER_TASK = 5


class Statements:
    def __init__(self) -> None:
        self.sent: Counter[str] = Counter()

    @property
    def total(self) -> int:
        return sum(self.sent.values())

    def listing(self) -> str:
        return "\n".join(f"{count} x {statement}" for statement, count in self.sent.items())


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> Iterator[Statements]:
    """Every statement psycopg sends in this process: queries, and its own BEGIN/COMMIT/SET (a
    commit with no transaction open sends nothing and is not counted)."""
    seen = Statements()
    execute, command = psycopg.Cursor.execute, psycopg.Connection._exec_command

    def counting_execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        text = query.decode() if isinstance(query, bytes) else str(query)
        seen.sent[" ".join(text.split())[:60]] += 1
        return execute(self, query, *args, **kwargs)

    def counting_command(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        seen.sent[str(query)[:60]] += 1
        return command(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", counting_execute)
    monkeypatch.setattr(psycopg.Connection, "_exec_command", counting_command)
    yield seen


def test_an_import_and_an_export_task_send_no_more_statements_than_they_need(
        tmp_path: Path, postgres_url: str, statements: Statements, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVOICESYNC_SECRETS", "file")
    sandbox = BillitSandbox(documents=1, companies=3, seed=15)
    running = serve(sandbox)
    home = tmp_path / "home"
    home.mkdir()
    (home / "invoicesync.toml").write_text(f'state_url = "{postgres_url}"\nshared_budgets = false\n')
    try:
        with Workspace.open(home) as workspace:
            for key, value in sandbox.account_secrets().items():
                workspace.secrets("billit").set(key, value)
            parties = [str(c.party_id) for c in sandbox.companies]
            connect(workspace, "billit", ui=NonInteractiveUI(), name="billit",
                    settings=sandbox.account_settings(running.url), companies=parties)
            connect(workspace, "localfs", ui=NonInteractiveUI(), name="folder",
                    settings={"root": str(tmp_path / "out")})
            workspace.plugins.load_all()
            runtime = WorkerRuntime(workspace, CelerySettings.from_config(workspace.config), TaskLeases(postgres_url))
            try:
                changed: list[str] = []
                for party in parties:
                    statements.sent.clear()
                    answer = import_chunk(runtime, "billit", party, False)
                    assert answer["report"].get("problems", []) == [], answer
                    assert len(answer["changed"]) == 1
                    changed += answer["changed"]
                    assert statements.total == IMPORT_STATEMENTS, statements.listing()

                statements.sent.clear()
                answer = export_batch(runtime, "folder", changed)
                assert answer["report"].get("problems", []) == [], answer
                assert statements.total == EXPORT_PER_TASK + EXPORT_PER_DOCUMENT * len(changed), statements.listing()
            finally:
                runtime.leases.close()
        assert len(list((tmp_path / "out").rglob("*.pdf"))) == len(parties)
    finally:
        running.stop()
