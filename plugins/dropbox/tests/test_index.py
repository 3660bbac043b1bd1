"""The run's folder index: one listing instead of a look-up per file, with the same guarantees.

Request COUNTS are asserted (never times): a first sync of N new documents makes no
``get_metadata`` at all, a later run asks ``list_folder/continue`` for what changed, and a re-sync
with nothing to do makes no request to Dropbox.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from invoicesync import DeliveryStatus, PluginKind, PushRequest
from invoicesync.context import NonInteractiveUI
from invoicesync.plugins import Plugins
from invoicesync.sandbox import Request, Response
from invoicesync.testing import MemorySource
from invoicesync_dropbox import index as index_module
from invoicesync_dropbox import plugin as dropbox_plugin
from invoicesync_dropbox.index import KV_KEY, index_root
from invoicesync_dropbox.index_table import stored_rows
from invoicesync_dropbox.sandbox import DropboxSandbox

pipeline = pytest.importorskip("invoicesync.pipeline")
accounts = pytest.importorskip("invoicesync.accounts")

FOLDER = "/Invoices/Acme BV/2026/purchase/"
N = 20


def _count(env: Any, route: str) -> int:
    return int(env.app.count("POST", rf"^/2/files/{route}$"))


def _documents(env: Any, n: int = N) -> list[Any]:
    return [env.document(f"IDX-{i:03d}", pdf=f"%PDF index {i}".encode()) for i in range(n)]


def test_a_first_sync_lists_once_and_looks_up_no_file(env: Any) -> None:
    deliveries = env.push(_documents(env))
    assert [d.status for d in deliveries] == [DeliveryStatus.DELIVERED] * N
    assert _count(env, "get_metadata") == 0
    assert _count(env, "list_folder") == 1 and _count(env, "list_folder/continue") == 0
    assert _count(env, "upload_session/start") == N and _count(env, "upload_session/finish_batch_v2") == 1
    assert len(env.requests_to_dropbox()) == 1 + N + 1


def test_the_next_run_catches_up_from_the_stored_cursor(env: Any) -> None:
    """A lost ledger offers everything again: the next run asks only for changes since its cursor,
    finds every file by its content_hash, and writes nothing."""
    documents = _documents(env)
    env.push(documents[:1])  # /Invoices did not exist: nothing to keep a cursor of yet
    assert env.workspace.state.kv(env.account.name).get(KV_KEY) is None
    env.push(documents)
    kv = env.workspace.state.kv(env.account.name)
    stored = kv.get(KV_KEY)
    assert stored["root"] == "/Invoices" and stored["cursor"] and len(list(stored_rows(kv, stored))) > N
    before = len(env.requests_to_dropbox())
    again = env.push(documents)
    assert [d.status for d in again] == [DeliveryStatus.UNCHANGED] * N
    requests = env.requests_to_dropbox()[before:]
    assert requests == ["/2/files/list_folder/continue"]  # the files this run's predecessor wrote


def test_a_reset_cursor_lists_again(env: Any) -> None:
    documents = _documents(env, 3)
    env.push(documents)
    env.app.namespace.reset_cursors()
    assert [d.status for d in env.push(documents)] == [DeliveryStatus.UNCHANGED] * 3
    assert _count(env, "list_folder") == 2 and _count(env, "get_metadata") == 0
    assert len(env.files()) == 3


@pytest.mark.parametrize("content", [b"someone else's file", b"%PDF index 1"], ids=["different", "identical"])
def test_a_file_created_between_the_listing_and_the_write(env: Any, content: bytes) -> None:
    """Someone puts a file at our planned name after the listing: a different file is neither
    overwritten nor duplicated (ours takes `` (2)``); an identical one is taken as ours, not copied."""
    documents = _documents(env, 2)
    taken = FOLDER + "2026-01-15_Supplier NV_IDX-001.pdf"
    original = env.app.handle

    def handle(request: Request) -> Response:
        response: Response = original(request)
        if request.path == "/2/files/list_folder":
            env.occupy(taken, content)
        return response

    env.app.handle = handle
    deliveries = {d.document_id: d for d in env.push(documents)}
    mine = deliveries[documents[1].id]
    assert mine.status in (DeliveryStatus.DELIVERED, DeliveryStatus.UNCHANGED), mine.message
    assert env.stored(taken) == content  # never overwritten
    if content == b"%PDF index 1":
        assert mine.target_path == taken and len(env.files()) == 2  # found, not duplicated
    else:
        assert mine.target_path == taken.replace(".pdf", " (2).pdf")
        assert env.stored(mine.target_path) == b"%PDF index 1" and len(env.files()) == 3
    # The run after finds each document's own file again and writes nothing.
    writes = env.writes()
    again = env.push([PushRequest(document=d, previous=deliveries[d.id]) for d in documents])
    assert [d.status for d in again] == [DeliveryStatus.UNCHANGED] * 2 and env.writes() == writes


class _Crash(BaseException):
    """The process dies: nothing after this point runs, not even the ledger's record."""


def test_a_crash_after_the_write_before_the_index_update_does_not_duplicate(
        env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    documents = _documents(env, 3)
    env.push(documents[:1])  # a stored index and cursor from an earlier run

    def crash(self: Any, meta: Any) -> None:
        raise _Crash

    with monkeypatch.context() as patch:
        patch.setattr(index_module.FolderIndex, "record", crash)
        with pytest.raises(_Crash):
            env.push(documents)
    assert len(env.files()) == 3  # the writes happened; neither the index nor the ledger knows
    writes = env.writes()
    again = env.push(documents)  # no previous delivery: the ledger never heard of them
    assert [d.status for d in again] == [DeliveryStatus.UNCHANGED] * 3
    assert env.writes() == writes and len(env.files()) == 3
    assert _count(env, "get_metadata") == 0  # list_folder/continue reported the crashed run's files


def test_a_template_without_a_fixed_folder_looks_each_file_up() -> None:
    assert index_root("/Invoices/{company}/{year}/{number}.{ext}") == "/Invoices"
    assert index_root("/Shared/Finance/{number}.{ext}") == "/Shared/Finance"
    assert index_root("/{company}/{number}.{ext}") is None


def test_without_an_index_placement_still_looks_first(env: Any) -> None:
    env.configure(template="/{company}/{number}.{ext}")
    documents = _documents(env, 2)
    env.push(documents)
    assert _count(env, "list_folder") == 0 and _count(env, "get_metadata") == 2
    assert [d.status for d in env.push(documents)] == [DeliveryStatus.UNCHANGED] * 2


def test_a_resync_with_nothing_changed_makes_no_request_to_dropbox(
        serve_sandbox: Callable[[DropboxSandbox], Any], workspace_factory: Callable[..., Any]) -> None:
    app = DropboxSandbox(retry_after=0)
    server = serve_sandbox(app)
    source = MemorySource(12, page=12)
    plugins = Plugins.from_objects({"memory": (PluginKind.SOURCE, source),
                                    "dropbox": (PluginKind.TARGET, dropbox_plugin)})
    workspace = workspace_factory(plugins=plugins)
    for key, value in app.account_secrets().items():
        workspace.secrets("dropbox").set(key, value)
    accounts.connect(workspace, "memory", ui=NonInteractiveUI())
    accounts.connect(workspace, "dropbox", ui=NonInteractiveUI(), settings=app.account_settings(server.url))

    connected = len(app.requests)  # connect proved the login with one list_folder: /Invoices is absent
    first = pipeline.run_sync(workspace)
    assert first.exit_code == 0 and first.exported["dropbox"]["delivered"] == 12
    sync = [p for _, p, _ in app.requests[connected:] if p.startswith("/2/")]
    assert sync.count("/2/files/get_metadata") == 0 and sync.count("/2/files/list_folder") == 0
    files = [r for r in app.requests if r[1].startswith("/2/")]

    second = pipeline.run_sync(workspace)
    assert second.exit_code == 0
    assert [r for r in app.requests if r[1].startswith("/2/")] == files  # not one request more


def test_the_sessions_of_a_batch_start_side_by_side(env: Any) -> None:
    """Two session starts are in the sandbox at once (a barrier, not a timing guess)."""
    both = threading.Barrier(2, timeout=20)
    overlapped: list[bool] = []
    original = env.app.handle

    def handle(request: Request) -> Response:
        if request.path == "/2/files/upload_session/start" and not overlapped:
            try:
                both.wait()
                overlapped.append(True)
            except threading.BrokenBarrierError:
                overlapped.append(False)
        response: Response = original(request)
        return response

    env.app.handle = handle
    deliveries = env.push(_documents(env, 4))
    assert [d.status for d in deliveries] == [DeliveryStatus.DELIVERED] * 4
    assert overlapped and all(overlapped)


def test_an_index_saved_as_objects_before_rows_is_still_read(env: Any) -> None:
    """The index is kept as rows now; one a run saved earlier as a list of objects is caught up
    from its cursor like any other, not listed again."""
    documents = _documents(env)
    env.push(documents[:1])
    env.push(documents)
    kv = env.workspace.state.kv(env.account.name)
    stored = kv.get(KV_KEY)
    kv.set(KV_KEY, {"root": stored["root"], "cursor": stored["cursor"],
                    "entries": [{k: v for k, v in meta.items() if v is not None}
                                for meta in stored_rows(kv, stored)]})
    before = len(env.requests_to_dropbox())
    assert [d.status for d in env.push(documents)] == [DeliveryStatus.UNCHANGED] * N
    assert env.requests_to_dropbox()[before:] == ["/2/files/list_folder/continue"]
