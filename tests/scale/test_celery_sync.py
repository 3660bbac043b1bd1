"""``sync --executor celery`` with real ``invoicesync worker`` processes, RabbitMQ and PostgreSQL:
every document on every target exactly once, the same as one process, whatever dies on the way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
from invoicesync.sandbox import RunningSandbox

from ._world import Targets, Workers, environment, finish, make_home, sync

#: Billit accounts in the home; the sandbox's companies are shared out between them.
ACCOUNTS = 4
SAME = ("imported", "exported", "skipped_reasons", "problems", "fatal", "exit_code")


def delivered_twice(state_url: str) -> list[tuple[str, str, int]]:
    """(document, target, count) of every delivery the ledger logged as written more than once."""
    with psycopg.connect(state_url) as db:
        return db.execute("SELECT document_id, target, count(*) FROM delivery_log WHERE status = 'delivered' "
                          "GROUP BY document_id, target HAVING count(*) > 1").fetchall()


def reference_run(tmp_path: Path, billit: RunningSandbox, targets: Targets) -> dict[str, Any]:
    """A plain ``sync`` of the same source in one process, into targets of its own."""
    home = make_home(tmp_path / "reference", billit, targets, accounts=ACCOUNTS, state_url=None)
    code, report, err = finish(sync(home, environment()))
    assert code == 0, err
    return report


def assert_same_targets(targets: Targets, reference: Targets) -> None:
    assert targets.folder_files() == reference.folder_files()
    assert targets.dropbox.files() == reference.dropbox.files()
    twice = {path: n for path, n in targets.dropbox.commits.items() if n > 1}
    assert not twice, f"written more than once to Dropbox: {twice}"


def test_three_workers_deliver_every_document_once_as_one_process_would(
        tmp_path: Path, billit: RunningSandbox, targets: Targets, reference_targets: Targets, postgres_url: str,
        broker_url: str, queue: str) -> None:
    home = make_home(tmp_path / "home", billit, targets, accounts=ACCOUNTS, state_url=postgres_url,
                     broker_url=broker_url, queue=queue)
    env = environment()
    workers = Workers(home, env)
    workers.start(3)
    try:
        code, report, err = finish(sync(home, env, "--executor", "celery"))
    finally:
        workers.stop()
    reference = reference_run(tmp_path, billit, reference_targets)
    assert code == 0, (err, report["problems"][:5], workers.logs())
    assert {k: report[k] for k in SAME} == {k: reference[k] for k in SAME}
    assert report["imported"]["new"] > 150  # a few of the 200 orders are deleted or file-less
    assert_same_targets(targets, reference_targets)
    assert delivered_twice(postgres_url) == []
