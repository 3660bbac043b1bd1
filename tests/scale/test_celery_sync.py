"""``sync --executor celery`` with real ``invoicesync worker`` processes, RabbitMQ and PostgreSQL:
every document on every target exactly once, the same as one process, whatever dies on the way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
from invoicesync.sandbox import RunningSandbox

from ._world import Targets, Workers, environment, finish, make_home, sync, wait_for
from .conftest import LONG, rabbitmqctl

#: Billit accounts in the home; the sandbox's companies are shared out between them.
ACCOUNTS = 4
SAME = ("imported", "exported", "skipped_reasons", "problems", "fatal", "exit_code")
#: Kills (and broker cuts) in one run of the failure test.
ROUNDS = 4 if LONG else 1


def delivered_twice(state_url: str) -> list[tuple[str, str, int]]:
    """(document, target, count) of every delivery the ledger logged as written more than once."""
    with psycopg.connect(state_url) as db:
        return db.execute("SELECT document_id, target, count(*) FROM delivery_log WHERE status = 'delivered' "
                          "GROUP BY document_id, target HAVING count(*) > 1").fetchall()


def reference_run(tmp_path: Path, billit: RunningSandbox, targets: Targets, accounts: int = ACCOUNTS) -> dict[str, Any]:
    """A plain ``sync`` of the same source in one process, into targets of its own."""
    home = make_home(tmp_path / "reference", billit, targets, accounts=accounts, state_url=None)
    code, report, err = finish(sync(home, environment()))
    assert code == 0, err
    return report


def assert_same_targets(targets: Targets, reference: Targets) -> None:
    """The same files at the same paths as the single-process run, and none written twice."""
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


def test_a_killed_worker_and_a_cut_broker_connection_lose_nothing_and_write_nothing_twice(
        tmp_path: Path, small_billit: RunningSandbox, targets: Targets, reference_targets: Targets,
        postgres_url: str, broker_url: str, rabbit_vhost: str, queue: str) -> None:
    home = make_home(tmp_path / "home", small_billit, targets, accounts=ACCOUNTS, state_url=postgres_url,
                     broker_url=broker_url, queue=queue)
    # Slow Dropbox writes: the kill and the cut find pushes in flight (uploaded, not yet recorded).
    targets.dropbox.add_fault({"action": "delay", "path": "/2/files/upload", "seconds": 0.2, "times": None})
    env = environment()
    workers = Workers(home, env)
    workers.start(3)
    try:
        first = sync(home, env, "--executor", "celery")
        for _ in range(ROUNDS):
            written = sum(targets.dropbox.commits.values())
            wait_for(lambda n=written + 8: sum(targets.dropbox.commits.values()) >= n, what="pushes under way")
            workers.kill_one()  # SIGKILL: its tasks are unacked, its claims stale
            workers.start(1)
            wait_for(lambda n=written + 16: sum(targets.dropbox.commits.values()) >= n, what="more pushes")
            # Every connection of the vhost: the workers' (their running tasks go to another worker
            # while they still run) and the coordinator's.
            rabbitmqctl("close_all_connections", "-p", rabbit_vhost, "scale test: broker cut")
        code, report, err = finish(first)
        assert code in (0, 1), (err, report["fatal"], workers.logs())
        # The retry: whatever the cut or the kill left (in progress elsewhere, pending) is settled now.
        code, report, err = finish(sync(home, env, "--executor", "celery"))
        assert code == 0, (err, report["problems"][:5], workers.logs())
    finally:
        workers.stop()
    reference_run(tmp_path, small_billit, reference_targets)
    assert_same_targets(targets, reference_targets)
    assert delivered_twice(postgres_url) == []


def test_two_syncs_enqueued_at_once_still_deliver_each_document_once(
        tmp_path: Path, small_billit: RunningSandbox, targets: Targets, reference_targets: Targets,
        postgres_url: str, broker_url: str, queue: str) -> None:
    home = make_home(tmp_path / "home", small_billit, targets, accounts=ACCOUNTS, state_url=postgres_url,
                     broker_url=broker_url, queue=queue)
    env = environment()
    workers = Workers(home, env)
    workers.start(3)
    try:
        both = [sync(home, env, "--executor", "celery") for _ in range(2)]
        results = [finish(run) for run in both]
        # Each may find work the other holds (in progress elsewhere: 1); neither fails.
        assert all(code in (0, 1) for code, _, _ in results), [(c, r["problems"][:3], e) for c, r, e in results]
        imported = sum(r["imported"].get("new", 0) for _, r, _ in results)
        code, report, err = finish(sync(home, env, "--executor", "celery"))
        assert code == 0, (err, report["problems"][:5])
    finally:
        workers.stop()
    reference = reference_run(tmp_path, small_billit, reference_targets)
    assert imported == reference["imported"]["new"]  # each document new in one run only
    assert_same_targets(targets, reference_targets)
    assert delivered_twice(postgres_url) == []
