"""The Celery executor's other roads: Redis as the broker, imports cut into chunks (no task runs
long enough for RabbitMQ's consumer_timeout), and the one-line errors of a run that cannot start."""

from __future__ import annotations

import socket
from pathlib import Path

from invoicesync.distributed._app import IMPORT_TASK
from invoicesync.sandbox import RunningSandbox, serve
from invoicesync_billit.sandbox import BillitSandbox
from invoicesync_billit.sandbox.app import PAGE_SIZE

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
)


def test_redis_as_the_broker(tmp_path: Path, small_billit: RunningSandbox, small_reference: Holdings,
                             targets: Targets, postgres_url: str, redis_url: str, queue: str) -> None:
    home = make_home(tmp_path / "home", small_billit, targets, accounts=ACCOUNTS, state_url=postgres_url,
                     broker_url=redis_url, queue=queue)
    env = environment()
    workers = Workers(home, env)
    workers.start(2)
    try:
        code, report, err = finish(sync(home, env, "--executor", "celery"))
    finally:
        workers.stop()
    assert code == 0, (err, report["problems"][:5], workers.logs())
    assert_same_targets(targets, small_reference)
    assert delivered_twice(postgres_url) == []


def test_a_long_import_goes_on_in_chunks_of_a_few_seconds(
        tmp_path: Path, targets: Targets, reference_targets: Targets, postgres_url: str, broker_url: str,
        queue: str) -> None:
    # Four pages: a listing runs ahead of its fetches by up to the import's in-flight window (4x the
    # plugin's concurrency: 64 orders for Billit), so with two pages the first cursor was saved only
    # once the listing had reached its end, and one chunk did it all.
    app = BillitSandbox(documents=3 * PAGE_SIZE + 20, companies=1, seed=17)
    with serve(app) as billit:
        home = make_home(tmp_path / "home", billit, targets, accounts=1, state_url=postgres_url,
                         broker_url=broker_url, queue=queue)
        # A chunk this short ends at the first saved cursor: one page of orders per task.
        env = environment(INVOICESYNC_CELERY_CHUNK_SECONDS="0.1")
        workers = Workers(home, env)
        workers.start(1, loglevel="INFO")  # INFO: Celery logs each task it receives
        try:
            code, report, err = finish(sync(home, env, "--executor", "celery"))
        finally:
            workers.stop()
        assert code == 0, (err, report["problems"][:5], workers.logs())
        # One company, yet several import tasks: each chunk after the first goes on from the cursor
        # the one before it saved. (Counting listings told nothing: how far a chunk's listing runs
        # ahead of its fetches depends on the machine's load.)
        import_tasks = workers.full_logs().count(f"Task {IMPORT_TASK}[")
        assert import_tasks >= 4, workers.logs()  # received and succeeded, per task
        reference = reference_run(tmp_path, billit, reference_targets, accounts=1)
    # Orders fetched after the last saved cursor of a chunk are listed again by the next: unchanged.
    assert report["imported"]["new"] == reference["imported"]["new"] > 100
    assert set(report["imported"]) <= {"new", "unchanged"}
    assert_same_targets(targets, reference_targets.holdings())


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_broker_is_one_line_and_exit_2(tmp_path: Path, small_billit: RunningSandbox, targets: Targets,
                                                    postgres_url: str, queue: str) -> None:
    url = f"amqp://guest:secret-pw@127.0.0.1:{_closed_port()}//"
    home = make_home(tmp_path / "home", small_billit, targets, accounts=1, state_url=postgres_url,
                     broker_url=url, queue=queue)
    code, report, err = finish(sync(home, environment(), "--executor", "celery"), timeout=120)
    assert code == 2
    assert report["fatal"] and "the Celery broker at amqp://guest:***@127.0.0.1" in report["fatal"][0]
    assert "secret-pw" not in err + str(report)


def test_the_celery_executor_needs_a_postgresql_state(tmp_path: Path, small_billit: RunningSandbox,
                                                       targets: Targets) -> None:
    home = make_home(tmp_path / "home", small_billit, targets, accounts=1, state_url=None)
    code, report, _ = finish(sync(home, environment(), "--executor", "celery"))
    assert code == 2 and "needs the state in PostgreSQL" in report["fatal"][0]
