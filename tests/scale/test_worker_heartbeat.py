"""A worker's consumer connection carries a short heartbeat: RabbitMQ keeps a consumer's
unacknowledged tasks for as long as its connection looks alive, so a worker whose event loop stops
answering (a frozen process or host, a consumer stuck on a garbled frame after a broker cut) must be
dropped soon, for its tasks to go to the other workers — not after Celery's 120 s heartbeat."""

from __future__ import annotations

from pathlib import Path

from invoicesync.distributed import WORKER_HEARTBEAT
from invoicesync.sandbox import RunningSandbox

from ._world import Targets, Workers, environment, make_home, wait_for
from .conftest import rabbitmqctl


def _consumers(vhost: str, queue: str) -> int:
    for line in rabbitmqctl("list_queues", "-p", vhost, "name", "consumers").splitlines():
        name, _, count = line.partition("\t")
        if name == queue:
            return int(count)
    return 0


def test_rabbitmq_holds_a_worker_to_a_short_heartbeat(
        tmp_path: Path, small_billit: RunningSandbox, targets: Targets, postgres_url: str, broker_url: str,
        rabbit_vhost: str, queue: str) -> None:
    home = make_home(tmp_path / "home", small_billit, targets, accounts=1, state_url=postgres_url,
                     broker_url=broker_url, queue=queue)
    workers = Workers(home, environment())
    workers.start(1)
    try:
        wait_for(lambda: _consumers(rabbit_vhost, queue) == 1, what="the worker consuming")
        # The heartbeat timeout each connection of the vhost negotiated (the worker's are the only ones).
        rows = [line.split("\t") for line in rabbitmqctl("list_connections", "-p", rabbit_vhost, "name",
                                                        "timeout").splitlines()]
        timeouts = {int(row[1]) for row in rows if len(row) == 2 and row[1].isdigit()}
    finally:
        workers.stop()
    assert int(WORKER_HEARTBEAT) in timeouts, timeouts
    assert WORKER_HEARTBEAT <= 15
