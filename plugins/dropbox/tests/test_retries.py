"""In-run retries of transient failures: an entry of a batch commit refused for write-lock
contention comes back as a ``failed`` delivery with ``retry_after``, the runner offers it again in
the same run, and the next push looks up before writing, so nothing lands twice.

The sandbox holds the write lock on chosen paths (``Namespace.contend``), which fails exactly that
entry of a ``finish_batch_v2`` while the others commit, like a busy shared folder on Dropbox.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import httpx
import pytest
from invoicesync import Delivery, DeliveryStatus, PluginKind, PushRequest, accounts, pipeline
from invoicesync.context import NonInteractiveUI
from invoicesync.pipeline import _export as export_stage
from invoicesync.plugins import Plugins
from invoicesync.testing import MemorySource
from invoicesync_dropbox import plugin as dropbox_plugin
from invoicesync_dropbox.export import ENTRY_RETRY_AFTER
from invoicesync_dropbox.sandbox import DropboxSandbox

CONTENDED = r"inv-0003\.pdf$"  # the path of MemorySource's document m3 (and of env's INV-0003)


@pytest.mark.parametrize("nested", [False, True], ids=["entry_tag", "inside_write_error"])
def test_contended_batch_entry_fails_transiently_and_the_next_push_looks_first(
        env: Any, nested: bool) -> None:
    docs = [env.document(f"INV-000{i}", pdf=f"%PDF {i}".encode()) for i in (1, 2, 3)]
    env.app.namespace.contend(CONTENDED, times=1, nested=nested)

    first = {d.document_id: d for d in env.push(docs)}
    assert env.app.count("POST", r"/2/files/upload$") == 0  # one finish_batch_v2 for the three
    assert env.app.count("POST", r"finish_batch_v2$") == 1
    failed = first[docs[2].id]
    assert failed.status is DeliveryStatus.FAILED and failed.retry_after == ENTRY_RETRY_AFTER
    assert "too many writes" in (failed.message or "") and "INV-0003.pdf" in (failed.message or "")
    assert [first[d.id].status for d in docs[:2]] == [DeliveryStatus.DELIVERED] * 2
    assert all(first[d.id].retry_after is None for d in docs[:2])

    # The runner's retry: the failed row is the previous delivery.
    again = env.push([PushRequest(document=d, previous=first[d.id]) for d in docs])
    assert [d.status for d in again] == [DeliveryStatus.UNCHANGED, DeliveryStatus.UNCHANGED,
                                         DeliveryStatus.DELIVERED]
    names = sorted(e.display.rsplit("/", 1)[-1] for e in env.files())
    assert names == [f"2026-01-15_Supplier NV_INV-000{i}.pdf" for i in (1, 2, 3)]


def test_a_file_that_landed_despite_a_failed_report_is_not_written_again(env: Any) -> None:
    """Retrying is only safe because the push looks first: pretend the failed entry was committed
    after all (its outcome misreported), and the retry must find it rather than add a copy."""
    doc = env.document("INV-0003", pdf=b"%PDF 3")
    env.app.namespace.contend(CONTENDED, times=1)  # its entry of the batch commit is refused
    [failed] = env.push([doc])
    assert failed.status is DeliveryStatus.FAILED and failed.retry_after == ENTRY_RETRY_AFTER
    env.app.namespace.uncontend()
    env.occupy("/Invoices/Acme BV/2026/purchase/2026-01-15_Supplier NV_INV-0003.pdf", b"%PDF 3")
    writes = env.writes()
    [retried] = env.push([PushRequest(document=doc, previous=failed)])
    assert retried.status is DeliveryStatus.UNCHANGED
    assert env.writes() == writes and len(env.files()) == 1


def test_a_retried_new_version_still_overwrites_its_earlier_file(env: Any) -> None:
    """The failed row keeps the earlier version's confirmed file, so the retry of a changed
    document still knows which file is its own, and on_change=overwrite replaces it."""
    env.configure(on_change="overwrite")
    v1 = env.document("INV-0003", pdf=b"%PDF v1")
    [delivered] = env.push([v1])
    v2 = env.document("INV-0003", pdf=b"%PDF v2, corrected")
    env.app.namespace.contend(CONTENDED, times=1)  # the lone update, an entry of a batch commit, is refused
    [failed] = env.push([PushRequest(document=v2, previous=delivered)])
    assert failed.status is DeliveryStatus.FAILED and failed.retry_after == ENTRY_RETRY_AFTER
    [retried] = env.push([PushRequest(document=v2, previous=failed)])
    assert retried.status is DeliveryStatus.DELIVERED
    [only] = env.files()
    assert only.display.endswith("INV-0003.pdf") and env.stored(only.display) == b"%PDF v2, corrected"


def test_a_permanent_failure_is_not_retried_in_the_run(make_env: Callable[..., Any]) -> None:
    env = make_env()
    docs = [env.document(f"INV-000{i}", pdf=f"%PDF {i}".encode()) for i in (1, 2)]
    env.app.namespace.quota_bytes = len(b"%PDF 1")  # room for one: the second entry has no space
    results = env.push(docs)
    failed = [d for d in results if d.status is DeliveryStatus.FAILED]
    assert len(failed) == 1 and failed[0].retry_after is None


# -- through the runner ---------------------------------------------------------------------------


def _workspace(app: DropboxSandbox, url: str, workspace_factory: Callable[..., Any], source: MemorySource) -> Any:
    plugins = Plugins.from_objects({"memory": (PluginKind.SOURCE, source),
                                    "dropbox": (PluginKind.TARGET, dropbox_plugin)})
    workspace = workspace_factory(plugins=plugins)
    for key, value in app.account_secrets().items():  # a stored login: connect needs no browser
        workspace.secrets("dropbox").set(key, value)
    accounts.connect(workspace, "memory", ui=NonInteractiveUI())
    accounts.connect(workspace, "dropbox", ui=NonInteractiveUI(), settings=app.account_settings(url))
    return workspace


@pytest.fixture
def offers(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How often the runner offered each document (by source number) to the Dropbox plugin."""
    seen: Counter[str] = Counter()
    real_stream = dropbox_plugin.push_stream

    def counted(requests: Iterable[PushRequest]) -> Iterator[PushRequest]:
        for request in requests:
            seen[request.document.number] += 1
            yield request

    def counting_stream(requests: Iterable[PushRequest], ctx: Any) -> Iterator[Delivery]:
        return real_stream(counted(requests), ctx)

    monkeypatch.setattr(dropbox_plugin, "push_stream", counting_stream)
    return seen


def _files(app: DropboxSandbox) -> list[str]:
    return sorted(e.display for e in app.namespace.entries.values() if e.kind == "file")


def test_contended_entry_is_delivered_in_the_same_run(serve_sandbox: Callable[[DropboxSandbox], Any],
                                                      workspace_factory: Callable[..., Any],
                                                      offers: Counter[str]) -> None:
    app = DropboxSandbox(retry_after=0)
    server = serve_sandbox(app)
    source = MemorySource(8, page=8)
    workspace = _workspace(app, server.url, workspace_factory, source)
    app.namespace.contend(CONTENDED, times=1)

    report = pipeline.run_sync(workspace)

    assert report.exit_code == 0, (report.fatal, report.problems, dict(report.exported))
    assert report.exported["dropbox"]["delivered"] == 8 and report.exported["dropbox"]["failed"] == 0
    assert app.namespace.refused == {"/invoices/acme bv/2026/purchase/2026-01-01_supplier nv_inv-0003.pdf": 1}
    assert offers["INV-0003"] == 2 and all(n == 1 for number, n in offers.items() if number != "INV-0003")
    files = _files(app)
    assert len(files) == 8 and not any(" (2)" in f for f in files)  # no duplicate
    again = pipeline.run_sync(workspace)
    assert again.exit_code == 0 and _files(app) == files


def test_permanently_contended_entry_fails_after_the_in_run_retries(
        serve_sandbox: Callable[[DropboxSandbox], Any], workspace_factory: Callable[..., Any],
        offers: Counter[str]) -> None:
    app = DropboxSandbox(retry_after=0)
    server = serve_sandbox(app)
    source = MemorySource(8, page=8)
    workspace = _workspace(app, server.url, workspace_factory, source)
    app.namespace.contend(CONTENDED)  # for good

    report = pipeline.run_sync(workspace)

    assert report.exit_code != 0
    assert report.exported["dropbox"]["delivered"] == 7 and report.exported["dropbox"]["failed"] == 1
    assert offers["INV-0003"] == 1 + export_stage.RETRIES_PER_RUN  # offered, then retried twice, then failed
    assert len(_files(app)) == 7
    [row] = [d for d in workspace.state.deliveries_for(
        next(doc.id for doc in _library(workspace) if doc.number == "INV-0003"))]
    # The retries were entries of batch commits again (a streaming push commits even a lone file
    # that way), each refused for the namespace lock.
    assert row.status is DeliveryStatus.FAILED and "INV-0003.pdf" in (row.message or "")
    assert "lock contention" in (row.message or "")

    # The lock is released: the next run delivers it, once, and nothing else is written.
    app.namespace.uncontend()
    offers.clear()
    later = pipeline.run_sync(workspace)
    assert later.exit_code == 0 and later.exported["dropbox"]["delivered"] == 1
    assert dict(offers) == {"INV-0003": 1}
    files = _files(app)
    assert len(files) == 8 and not any(" (2)" in f for f in files)


def _library(workspace: Any) -> list[Any]:
    from invoicesync.state import DocumentFilter

    return list(workspace.state.find_documents(DocumentFilter()))


def test_sandbox_answers_a_lone_contended_write_with_429(serve_sandbox: Callable[[DropboxSandbox], Any]) -> None:
    """Outside a batch there is no entry to fail: a contended write is the usual 429 with Retry-After."""
    app = DropboxSandbox(retry_after=0)
    server = serve_sandbox(app)
    app.namespace.contend(r"/busy\.pdf$", times=1)
    token = app.oauth.issue_demo_tokens()[0]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream",
               "Dropbox-API-Arg": '{"path": "/busy.pdf", "mode": "add"}'}
    refused = httpx.post(f"{server.url}/2/files/upload", headers=headers, content=b"x")
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "0"
    assert refused.json()["error"]["reason"][".tag"] == "too_many_write_operations"
    assert httpx.post(f"{server.url}/2/files/upload", headers=headers, content=b"x").status_code == 200
