"""Fixtures of the scale-out tests: a RabbitMQ vhost of this test run's own (deleted after), the
Billit sandbox with many companies, a fresh PostgreSQL schema per test (``postgres_url``).

A broker or database that cannot be reached fails the tests, never skips them: ``.ci/run`` starts
RabbitMQ, Redis and PostgreSQL when they are down.
"""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from invoicesync.sandbox import RunningSandbox, serve
from invoicesync_billit.sandbox import BillitSandbox

from ._world import Holdings, Targets, reference_run, start_targets

RABBITMQ = ("127.0.0.1", 5672)
REDIS = ("127.0.0.1", 6379)
LONG = os.environ.get("INVOICESYNC_SCALE", "") == "long"
#: Companies in the Billit sandbox, and documents per company: many companies, few documents each.
COMPANIES = 1000 if LONG else 200
DOCUMENTS = 1
#: The smaller sandbox of the failure tests (kills, broker cuts, overlapping runs).
SMALL_COMPANIES = 200 if LONG else 24
SMALL_DOCUMENTS = 3 if LONG else 2


def _reachable(address: tuple[str, int], what: str, start: str) -> None:
    try:
        socket.create_connection(address, timeout=5).close()
    except OSError as exc:
        pytest.fail(f"{what} at {address[0]}:{address[1]} is unreachable ({exc}); start it with `{start}`")


def rabbitmqctl(*args: str) -> str:
    result = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise AssertionError(f"rabbitmqctl {' '.join(args)} failed: {result.stdout} {result.stderr}")
    return result.stdout


@pytest.fixture(scope="session")
def rabbit_vhost() -> Iterator[str]:
    """A vhost for this test run (guest may use it); its queues go with it."""
    _reachable(RABBITMQ, "RabbitMQ", "rabbitmq-server -detached && rabbitmqctl await_startup")
    vhost = f"invoicesync-test-{uuid.uuid4().hex[:12]}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield vhost
    finally:
        rabbitmqctl("delete_vhost", vhost)


@pytest.fixture
def broker_url(rabbit_vhost: str) -> str:
    return f"amqp://guest:guest@{RABBITMQ[0]}:{RABBITMQ[1]}/{rabbit_vhost}"


@pytest.fixture
def redis_url() -> str:
    _reachable(REDIS, "Redis", "redis-server --daemonize yes")
    return f"redis://{REDIS[0]}:{REDIS[1]}/0"


@pytest.fixture
def queue() -> str:
    """A queue name of the test's own (the Redis tests share one database)."""
    return f"invoicesync-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def billit() -> Iterator[RunningSandbox]:
    """Listing and fetching change nothing in it, so one serves every test of a module."""
    running = serve(BillitSandbox(documents=DOCUMENTS, companies=COMPANIES, seed=15))
    yield running
    running.stop()


@pytest.fixture(scope="session")
def small_billit() -> Iterator[RunningSandbox]:
    running = serve(BillitSandbox(documents=SMALL_DOCUMENTS, companies=SMALL_COMPANIES, seed=16))
    yield running
    running.stop()


@pytest.fixture(scope="session")
def small_reference(tmp_path_factory: pytest.TempPathFactory, small_billit: RunningSandbox) -> Holdings:
    """What a single-process run of the small sandbox leaves on its targets (the failure tests' yardstick)."""
    root = tmp_path_factory.mktemp("small-reference")
    targets = start_targets(root / "targets")
    try:
        reference_run(root, small_billit, targets)
        return targets.holdings()
    finally:
        targets.running.stop()


@pytest.fixture
def targets(tmp_path: Path) -> Iterator[Targets]:
    started = start_targets(tmp_path / "targets")
    yield started
    started.running.stop()


@pytest.fixture
def reference_targets(tmp_path: Path) -> Iterator[Targets]:
    """The same targets for a single-process run of the same source, to compare with."""
    started = start_targets(tmp_path / "reference-targets")
    yield started
    started.running.stop()
