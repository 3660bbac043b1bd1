from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from invoicesync import PluginKind
from invoicesync.plugins import Plugins
from invoicesync.state._sql import SqlStore
from invoicesync.testing import MemorySource, MemoryTarget
from invoicesync.workspace import Workspace


@pytest.fixture
def memory_plugins() -> tuple[Plugins, MemorySource, MemoryTarget]:
    source, target = MemorySource(25, page=7), MemoryTarget()
    plugins = Plugins.from_objects({
        "memory": (PluginKind.SOURCE, source),
        "memtarget": (PluginKind.TARGET, target),
    })
    from invoicesync.builtins import localfs

    plugins.register("localfs", localfs, kind=PluginKind.TARGET)
    return plugins, source, target


@pytest.fixture
def memory_workspace(workspace_factory: Callable[..., Workspace],
                     memory_plugins: tuple[Plugins, MemorySource, MemoryTarget]) -> Workspace:
    from invoicesync.accounts import connect
    from invoicesync.context import NonInteractiveUI

    workspace = workspace_factory(plugins=memory_plugins[0])
    connect(workspace, "memory", ui=NonInteractiveUI())
    connect(workspace, "memtarget", ui=NonInteractiveUI())
    return workspace


@pytest.fixture
def cli_plugins(memory_plugins: tuple[Plugins, MemorySource, MemoryTarget]) -> Plugins:
    """The in-memory plugins, for the CLI: ``CliRunner().invoke(cli, args, obj=cli_plugins)``."""
    return memory_plugins[0]


# -- the state backends: every state test runs on SQLite and on PostgreSQL -------------------------

#: The PostgreSQL server the tests use (trust auth); .ci/run starts it.
POSTGRES_ADMIN_URL = os.environ.get("INVOICESYNC_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A state URL on a fresh PostgreSQL schema of its own, dropped after the test. An unreachable
    server fails the test (never skips it): start it with
    ``pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start``."""
    import psycopg

    schema = f"test_{uuid.uuid4().hex[:16]}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {POSTGRES_ADMIN_URL} is unreachable ({exc}); start it with "
                    f"`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`")
    with admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
        try:
            yield f"{POSTGRES_ADMIN_URL}?options=-csearch_path%3D{schema}"
        finally:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgres"])
def state_backend(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a state test keeps its state: a state.db path, or a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "state.db")
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def open_store(state_backend: str) -> Iterator[Callable[..., SqlStore]]:
    """``open_store(target_version=None)``: open (or re-open, as the next run does) the test's state
    on this backend; every store opened is closed after the test."""
    from invoicesync.state import SqliteStore
    from invoicesync.state._postgres import PostgresStore

    opened: list[SqlStore] = []

    def open_(target_version: int | None = None) -> SqlStore:
        options = {} if target_version is None else {"target_version": target_version}
        store: SqlStore = (PostgresStore(state_backend, **options) if state_backend.startswith("postgresql:")
                           else SqliteStore(state_backend, **options))
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


# -- the blob stores: the blob tests run on the home's folder, a shared folder and S3 ---------------


@pytest.fixture(params=["home", "shared", "s3"])
def blob_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """Where a blob test keeps its blobs: ``None`` (the home's blobs/), a shared folder, or S3."""
    if request.param == "home":
        return None
    if request.param == "shared":
        return (tmp_path / "shared-blobs").as_uri()
    url: str = request.getfixturevalue("s3_blob_url")
    return url


#: Modules whose objects in reference cycles mean our code made the cycle. Other tests' leftover
#: threads (sandbox servers finishing a request) make garbage of their own while a test runs with
#: the collector off; counting everything made the cycle tests fail in the full suite only.
CYCLE_SUSPECTS = ("invoicesync", "httpx", "httpcore", "concurrent.futures", "tests.", "test_")


@pytest.fixture
def cyclic_garbage() -> Callable[[], int]:
    """Collect and count the unreachable objects of our own (and httpx's, and futures') types."""
    import gc

    def count() -> int:
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            gc.collect()
            found = [type(o).__module__ for o in gc.garbage]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
        return sum(module.startswith(CYCLE_SUSPECTS) for module in found)

    return count
