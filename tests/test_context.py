"""The Context's run-scoped things: one connection pool per base URL, and plugins' own resources."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from invoicesync.context import Context
from invoicesync.http._client import ssl_context
from invoicesync.models import Account, AccountDirection
from invoicesync.workspace import Workspace


def make_context(**kwargs: object) -> Context:
    account = Account(name="acct", plugin="svc", direction=AccountDirection.EXPORT)
    return Context(account=account, settings=None, secrets=None, blobs=None, kv=None, **kwargs)  # type: ignore[arg-type]


class _CountingHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections = 0

    def setup(self) -> None:
        super().setup()
        type(self).connections += 1

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _CountingHandler.connections = 0
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CountingHandler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_clients_made_per_batch_share_one_connection_for_the_run(server: str) -> None:
    ctx = make_context()
    for _ in range(5):  # as Dropbox and Drive do: new clients for every batch
        batch_client = ctx.http(server, auth=None)
        assert batch_client.get("/x").text == "ok"
        batch_client.close()  # a plugin closing its client does not close the run's pool
    assert _CountingHandler.connections == 1
    ctx.close()


def test_different_base_urls_timeouts_or_headers_get_their_own_pool(server: str) -> None:
    ctx = make_context()
    ctx.http(server).get("/a")
    ctx.http(server, timeout=300.0).get("/b")
    ctx.http(server, headers={"Accept": "application/json"}).get("/c")
    ctx.http(server + "/v2").get("/d")
    assert _CountingHandler.connections == 4
    ctx.close()


def test_closing_the_context_closes_the_pools(server: str) -> None:
    ctx = make_context()
    client = ctx.http(server)
    client.get("/x")
    ctx.close()
    with pytest.raises(RuntimeError, match="closed"):
        client.get("/x")
    assert ctx.http(server).get("/x").text == "ok"  # a later call opens a fresh pool
    ctx.close()


class Resource:
    def __init__(self, name: str, closed: list[str], fail: bool = False) -> None:
        self.name, self._closed, self._fail = name, closed, fail

    def close(self) -> None:
        self._closed.append(self.name)
        if self._fail:
            raise OSError(f"{self.name} would not close")


def test_a_resource_is_opened_once_even_when_threads_race() -> None:
    ctx = make_context()
    opened: list[int] = []

    def open_slowly() -> Resource:
        opened.append(1)
        time.sleep(0.05)
        return Resource("client", [])

    results: list[Resource] = []
    threads = [threading.Thread(target=lambda: results.append(ctx.resource("plugin.client", open_slowly)))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(opened) == 1
    assert all(r is results[0] for r in results)
    ctx.close()


def test_resources_close_last_opened_first_and_a_failing_close_still_closes_the_rest(server: str) -> None:
    ctx = make_context()
    closed: list[str] = []
    ctx.resource("a", lambda: Resource("a", closed))
    ctx.resource("b", lambda: Resource("b", closed, fail=True))
    ctx.resource("plain", lambda: {"no": "close"})
    client = ctx.http(server)
    with pytest.raises(OSError, match="b would not close"):
        ctx.close()
    assert closed == ["b", "a"]
    with pytest.raises(RuntimeError, match="closed"):
        client.get("/x")  # the pools closed too
    ctx.close()  # nothing left: a second close is quiet
    assert ctx.resource("a", lambda: Resource("a2", closed)).name == "a2"  # a new run's resource


def test_tls_contexts_are_shared_per_trust_setting_and_follow_a_rewritten_ca_file(tmp_path: Path) -> None:
    assert ssl_context(True) is ssl_context(True)
    ca_file = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca_file))
    first = ssl_context(str(ca_file))
    assert ssl_context(str(ca_file)) is first
    time.sleep(0.01)
    trustme.CA().cert_pem.write_to_path(str(ca_file))  # a new sandbox writes its CA to the same place
    assert ssl_context(str(ca_file)) is not first


def test_submit_runs_beside_the_caller_on_a_bounded_run_scoped_pool() -> None:
    ctx = make_context(side_threads=2)
    running, most = [0], [0]
    lock = threading.Lock()

    def work(n: int) -> int:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return n * 2

    futures = [ctx.submit(work, n) for n in range(6)]
    assert [f.result(5) for f in futures] == [0, 2, 4, 6, 8, 10]
    assert most[0] == 2  # beside the caller, but never more than side_threads
    ctx.close()
    later = ctx.submit(work, 7)  # a closed context's next run gets fresh threads
    assert later.result(5) == 14
    ctx.close()


def test_a_shared_resource_outlives_each_context_and_closes_with_the_workspace(memory_workspace: Workspace) -> None:
    # A Celery worker makes a context per task from one workspace: what a plugin shares per
    # credential (a token cache) must live as long as the workspace, not as one task's context.
    account = memory_workspace.account("memtarget")
    closed: list[str] = []
    opened: list[Resource] = []

    def open_one() -> Resource:
        opened.append(Resource(f"login-{len(opened)}", closed))
        return opened[-1]

    for _task in range(3):
        ctx = memory_workspace.context(account)
        ctx.shared_resource(("svc", "login", "digest"), open_one)
        ctx.resource(("svc", "own"), lambda: Resource("own", closed))
        ctx.close()
    assert len(opened) == 1 and closed == ["own"] * 3
    memory_workspace.close()
    assert closed == ["own"] * 3 + ["login-0"]


def test_a_context_without_a_workspace_keeps_a_shared_resource_as_its_own() -> None:
    ctx = make_context()
    closed: list[str] = []
    ctx.shared_resource("svc.login", lambda: Resource("login", closed))
    ctx.close()
    assert closed == ["login"]
