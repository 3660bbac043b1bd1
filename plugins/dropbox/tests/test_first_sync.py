"""A first sync into a folder ``connect`` saw empty sends no listing: N session starts and one
commit for N files, the plain script's count. ``connect`` asks the question instead, with the
``list_folder`` that proves the login; only a folder absent or without files then is recorded, and
only the first run of that root with no saved index uses the record, once.

What could have changed since connect is covered by the writes themselves: ``add`` never
replaces, a conflict answer has the paths looked up, and Dropbox writes nothing for a commit of
identical content. Request counts are asserted, never times.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from invoicesync import DeliveryStatus, PushRequest
from invoicesync.state._sql import AccountKV
from invoicesync.testing import ScriptedUI
from invoicesync.workspace import Workspace
from invoicesync_dropbox.index import EMPTY_KEY, KV_KEY

FOLDER = "/Invoices/Acme BV/2026/purchase/"
N = 12


def _count(env: Any, route: str) -> int:
    return int(env.app.count("POST", rf"^/2/files/{route}$"))


def _documents(env: Any, n: int = N) -> list[Any]:
    return [env.document(f"FS-{i:03d}", pdf=f"%PDF first sync {i}".encode()) for i in range(n)]


def _path(number: str) -> str:
    return f"{FOLDER}2026-01-15_Supplier NV_{number}.pdf"


def _no_browser(url: str) -> None:
    raise AssertionError(f"the stored login works; no browser should open: {url}")


def _connect(env: Any) -> list[str]:
    """``connect``'s ``auth`` over the stored login; what it told the user."""
    ui = ScriptedUI(browser=_no_browser)
    ctx = env.context(ui=ui)
    try:
        env.workspace.plugins.call("dropbox", "auth", account=env.account, ctx=ctx)
    finally:
        ctx.close()
    return ui.output


def _sync_requests(env: Any, since: int) -> list[str]:
    return env.requests_to_dropbox()[since:]


@pytest.mark.parametrize("folder", ["absent", "empty"])
def test_a_first_sync_into_a_folder_empty_at_connect_sends_no_listing(env: Any, folder: str) -> None:
    if folder == "empty":
        env.app.namespace.create_folder("/Invoices/Acme BV", autorename=False)  # folders, no file
    output = _connect(env)
    assert any("/Invoices" in line and ("does not exist" if folder == "absent" else "holds no files") in line
               for line in output), output
    connected = len(env.requests_to_dropbox())
    assert env.requests_to_dropbox() == ["/2/files/list_folder"]  # the login check is that listing
    deliveries = env.push(_documents(env))
    assert [d.status for d in deliveries] == [DeliveryStatus.DELIVERED] * N
    sync = _sync_requests(env, connected)
    assert sync.count("/2/files/upload_session/start") == N
    assert sync.count("/2/files/upload_session/finish_batch_v2") == 1
    assert len(sync) == N + 1, sync  # no list_folder, no get_metadata: the plain script's count
    assert len(env.files()) == N


def test_the_record_is_used_once_then_the_saved_index_takes_over(env: Any) -> None:
    env.app.namespace.create_folder("/Invoices", autorename=False)
    _connect(env)
    documents = _documents(env)
    connected = len(env.requests_to_dropbox())
    env.push(documents[:4])
    assert "/2/files/list_folder" not in _sync_requests(env, connected)
    kv = env.workspace.state.kv(env.account.name)
    assert kv.get(EMPTY_KEY) is None  # taken
    assert kv.get(KV_KEY)["root"] == "/Invoices"  # saved with the cursor connect got
    before = len(env.requests_to_dropbox())
    again = env.push(documents)
    assert [d.status for d in again[:4]] == [DeliveryStatus.UNCHANGED] * 4  # no ledger given: found, not rewritten
    sync = _sync_requests(env, before)
    # The cursor from connect reports the first run's files: a catch-up, not a listing.
    assert sync[0] == "/2/files/list_folder/continue" and "/2/files/list_folder" not in sync
    assert len(env.files()) == N


def test_after_a_first_sync_into_an_absent_folder_the_next_run_lists(env: Any) -> None:
    """Connect had no cursor to give (the folder did not exist): the record is gone after the
    first run all the same, so the next run lists instead of trusting an empty index again."""
    _connect(env)
    documents = _documents(env, 3)
    env.push(documents[:1])
    assert _count(env, "list_folder") == 1 and _count(env, "get_metadata") == 0  # connect's only
    assert [d.status for d in env.push(documents)] == [DeliveryStatus.UNCHANGED] + [DeliveryStatus.DELIVERED] * 2
    assert _count(env, "list_folder") == 2 and len(env.files()) == 3


def test_a_folder_holding_files_at_connect_is_listed_by_the_first_sync(env: Any) -> None:
    env.occupy("/Invoices/notes.txt", b"someone's notes")
    output = _connect(env)
    assert any("already holds files" in line for line in output), output
    assert env.workspace.state.kv(env.account.name).get(EMPTY_KEY) is None
    connected = len(env.requests_to_dropbox())
    env.push(_documents(env, 3))
    assert _sync_requests(env, connected).count("/2/files/list_folder") == 1


def test_a_reconnect_after_files_appeared_drops_the_record(env: Any) -> None:
    _connect(env)
    assert env.workspace.state.kv(env.account.name).get(EMPTY_KEY) is not None
    env.occupy("/Invoices/elsewhere.pdf", b"%PDF another tool's")
    _connect(env)
    assert env.workspace.state.kv(env.account.name).get(EMPTY_KEY) is None
    connected = len(env.requests_to_dropbox())
    env.push(_documents(env, 2))
    assert _sync_requests(env, connected).count("/2/files/list_folder") == 1


def test_a_different_file_at_the_path_after_connect_is_kept_and_ours_goes_beside_it(env: Any) -> None:
    _connect(env)
    documents = _documents(env, 3)
    taken = _path("FS-001")
    env.occupy(taken, b"someone else's file")  # between connect and the first sync
    connected = len(env.requests_to_dropbox())
    deliveries = {d.document_id: d for d in env.push(documents)}
    # Not listed: the conflict answer had the name looked up, and ours placed beside it.
    assert "/2/files/list_folder" not in _sync_requests(env, connected)
    assert all(d.status is DeliveryStatus.DELIVERED for d in deliveries.values()), \
        [d.message for d in deliveries.values()]
    assert env.stored(taken) == b"someone else's file"  # never overwritten
    mine = deliveries[documents[1].id]
    assert mine.target_path == taken.replace(".pdf", " (2).pdf")
    assert env.stored(mine.target_path) == b"%PDF first sync 1"
    assert len(env.files()) == 4  # theirs and our three, each once
    # Exactly once across runs: the next run finds each of ours and writes nothing.
    writes = env.writes()
    again = env.push([PushRequest(document=d, previous=deliveries[d.id]) for d in documents])
    assert [d.status for d in again] == [DeliveryStatus.UNCHANGED] * 3 and env.writes() == writes
    lost_ledger = env.push(documents)
    assert [d.status for d in lost_ledger] == [DeliveryStatus.UNCHANGED] * 3 and env.writes() == writes
    assert len(env.files()) == 4


def test_the_same_files_written_by_another_home_after_connect_are_not_duplicated(env: Any, tmp_path: Path) -> None:
    """Another home (its own state, the same Dropbox folder) delivers the same documents between
    this home's connect and its first sync: this home's commits of identical content write
    nothing, and no second copy appears."""
    _connect(env)
    (tmp_path / "other").mkdir()
    other_home = Workspace.open(tmp_path / "other", plugins=env.workspace.plugins)
    try:
        for key, value in env.app.account_secrets().items():
            other_home.secrets(env.account.name).set(key, value)
        other = type(env)(env.app, env.server, other_home, env.account)
        theirs = other.push(_documents(other, 4))  # no record in its state: it lists, then writes
        assert [d.status for d in theirs] == [DeliveryStatus.DELIVERED] * 4
    finally:
        other_home.close()
    revs = {e.display: e.rev for e in env.files()}
    assert len(revs) == 4
    listed = _count(env, "list_folder")
    deliveries = env.push(_documents(env, 4))
    assert all(d.status in (DeliveryStatus.DELIVERED, DeliveryStatus.UNCHANGED) for d in deliveries), \
        [d.message for d in deliveries]
    assert {e.display: e.rev for e in env.files()} == revs  # not one file added or rewritten
    assert [d.target_path for d in deliveries] == [_path(f"FS-{i:03d}") for i in range(4)]
    assert _count(env, "list_folder") == listed  # this home trusted connect's look, and was not misled


def test_a_root_changed_after_connect_is_listed(env: Any) -> None:
    _connect(env)
    assert env.workspace.state.kv(env.account.name).get(EMPTY_KEY)["root"] == "/Invoices"
    env.configure(template="/Books/{company}/{year}/{direction}/{date}_{counterparty}_{number}.{ext}")
    env.occupy("/Books/Acme BV/2026/purchase/2026-01-15_Supplier NV_FS-000.pdf", b"%PDF first sync 0")
    connected = len(env.requests_to_dropbox())
    deliveries = env.push(_documents(env, 2))
    assert [d.status for d in deliveries] == [DeliveryStatus.UNCHANGED, DeliveryStatus.DELIVERED]
    assert _sync_requests(env, connected).count("/2/files/list_folder") == 1
    # The record of /Invoices was taken away unused: going back to /Invoices lists too.
    assert env.workspace.state.kv(env.account.name).get(EMPTY_KEY) is None


# -- two workers of one account starting the first sync at once ---------------------------------

POSTGRES_ADMIN_URL = os.environ.get("INVOICESYNC_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL schema, dropped after the test (an unreachable server fails the test)."""
    import psycopg

    schema = f"test_{uuid.uuid4().hex[:16]}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {POSTGRES_ADMIN_URL} is unreachable ({exc})")
    with admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
        try:
            yield f"{POSTGRES_ADMIN_URL}?options=-csearch_path%3D{schema}"
        finally:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


def test_two_workers_starting_the_first_sync_at_once_use_the_record_once(
        make_env: Callable[..., Any], postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Celery workers share the kv state in PostgreSQL. Both read the record before either takes
    it (a barrier holds them there); the take is atomic (a row lock), so one starts from it and the
    other lists. Every file lands once."""
    env = make_env()
    homes = []
    for name in ("worker-a", "worker-b"):
        home = tmp_path / name
        home.mkdir()
        (home / "invoicesync.toml").write_text(f"state_url = {json.dumps(postgres_url)}\nshared_secrets = false\n")
        workspace = Workspace.open(home, plugins=env.workspace.plugins)
        for key, value in env.app.account_secrets().items():
            workspace.secrets(env.account.name).set(key, value)
        homes.append(workspace)
    try:
        env.workspace = homes[0]
        _connect(env)
        connected = len(env.requests_to_dropbox())
        both_read = threading.Barrier(2, timeout=30)
        update = AccountKV.update

        def update_after_both_read(self: AccountKV, key: str, fn: Callable[[Any], Any], default: Any = None) -> Any:
            if key == EMPTY_KEY:
                both_read.wait()
            return update(self, key, fn, default)

        monkeypatch.setattr(AccountKV, "update", update_after_both_read)
        workers = [type(env)(env.app, env.server, home, env.account) for home in homes]
        documents = [_documents(worker, 8)[n::2] for n, worker in enumerate(workers)]  # each its own blobs
        results: dict[int, Any] = {}

        def work(n: int) -> None:
            try:
                results[n] = workers[n].push(documents[n])
            except BaseException as exc:  # noqa: BLE001 - reported below
                results[n] = exc

        threads = [threading.Thread(target=work, args=(n,)) for n in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not both_read.broken, "both workers should have read the record before either took it"
        for n in (0, 1):
            assert not isinstance(results[n], BaseException), results[n]
            assert [d.status for d in results[n]] == [DeliveryStatus.DELIVERED] * 4, [d.message for d in results[n]]
        # One worker started from connect's record; the other found it taken and listed.
        assert _sync_requests(env, connected).count("/2/files/list_folder") == 1
        assert sorted(e.display for e in env.files()) == sorted(_path(f"FS-{i:03d}") for i in range(8))
    finally:
        for workspace in homes:
            workspace.close()
