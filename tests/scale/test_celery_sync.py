"""``sync --executor celery`` with real ``invoicesync worker`` processes, RabbitMQ and PostgreSQL:
every document on every target exactly once, the same as one process, whatever dies on the way."""

from __future__ import annotations

from pathlib import Path

from invoicesync.sandbox import RunningSandbox

from ._world import (
    ACCOUNTS,
    Holdings,
    Targets,
    Workers,
    assert_same_targets,
    delivered_twice,
    environment,
    finish,
    make_home,
    reference_run,
    sync,
    wait_for,
)
from .conftest import LONG, rabbitmqctl

SAME = ("imported", "exported", "skipped_reasons", "problems", "fatal", "exit_code")
#: Kills (and broker cuts) in one run of the failure test.
ROUNDS = 4 if LONG else 1


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
    assert_same_targets(targets, reference_targets.holdings())
    assert delivered_twice(postgres_url) == []


def test_a_killed_worker_and_a_cut_broker_connection_lose_nothing_and_write_nothing_twice(
        tmp_path: Path, small_billit: RunningSandbox, small_reference: Holdings, targets: Targets,
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
    assert_same_targets(targets, small_reference)
    assert delivered_twice(postgres_url) == []


def test_two_syncs_enqueued_at_once_still_deliver_each_document_once(
        tmp_path: Path, small_billit: RunningSandbox, small_reference: Holdings, targets: Targets,
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
        reference = sum(1 for path in small_reference.folder if path.endswith(".json"))  # one per document
        code, report, err = finish(sync(home, env, "--executor", "celery"))
        assert code == 0, (err, report["problems"][:5])
    finally:
        workers.stop()
    assert imported == reference  # each document new in one run only
    assert_same_targets(targets, small_reference)
    assert delivered_twice(postgres_url) == []
