"""Every page of the dashboard, over the in-memory source and target: the same Workspace, state and
pipeline as the CLI."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from invoicesync.pipeline import run_sync
from invoicesync.server import _documents_pages
from invoicesync.testing import MemorySource, MemoryTarget

from .conftest import Dashboard, metric_samples


def sync_from_the_dashboard(admin: Dashboard, account: str = "") -> dict[str, Any]:
    response = admin.post("/sync/run", {"account": account} if account else {})
    assert response.status_code == 303  # type: ignore[attr-defined]
    job = admin.client.app.state.jobs.current  # type: ignore[attr-defined]
    assert job.done.wait(60), "the sync did not finish"
    state: dict[str, Any] = job.state()
    return state


def test_sync_lists_the_imports_and_exports_with_their_plugins(admin: Dashboard) -> None:
    page = admin.client.get("/sync").text
    imports, exports = page.split("<h2>Imports")[1].split("<h2>Exports")
    assert "memory" in imports and "memtarget" not in imports
    assert "memtarget" in exports and "never" in exports


def test_sync_now_runs_the_pipeline_in_the_background_and_streams_the_summary(admin: Dashboard) -> None:
    state = sync_from_the_dashboard(admin)
    assert state["summary"]["imported"] == {"new": 25}
    assert state["summary"]["exported"]["memtarget"] == {"delivered": 25}
    with admin.client.stream("GET", "/sync/events") as events:
        body = "".join(events.iter_text())
    assert body.startswith("event: done\ndata: ") and '"exit_code": 0' in body
    page = admin.client.get("/sync").text
    assert "Exit code 0" in page and "Imported: new 25" in page
    assert re.search(r"memtarget.*?ok", page, re.S)  # the account's last sync


def test_sync_now_for_one_account_syncs_that_one(admin: Dashboard) -> None:
    state = sync_from_the_dashboard(admin, "memory")
    assert state["accounts"] == ["memory"]
    assert admin.post("/sync/run", {"account": "nope"}).status_code == 303  # type: ignore[attr-defined]
    assert "There is no account called nope." in admin.client.get("/sync").text
    assert "There is no account" not in admin.client.get("/sync").text  # shown once


def test_a_sync_while_another_runner_holds_the_home_ends_busy(admin: Dashboard) -> None:
    from invoicesync.state import RunnerInfo

    with admin.workspace.state.runner_lock(RunnerInfo.current()):
        state = sync_from_the_dashboard(admin)
    assert state["summary"]["busy"] and state["summary"]["exit_code"] == 75
    assert state["summary"]["busy"] in html.unescape(admin.client.get("/sync").text)


def test_a_notice_is_never_taken_from_the_url(admin: Dashboard) -> None:
    assert "Call this number" not in admin.client.get("/sync?notice=Call+this+number").text


def test_disconnect_removes_the_account(admin: Dashboard) -> None:
    admin.post("/accounts/disconnect", {"account": "memtarget"})
    assert "Disconnected memtarget." in admin.client.get("/sync").text
    assert admin.workspace.state.get_account("memtarget") is None


def test_history_shows_cli_and_dashboard_runs_with_counts_and_problems(
        admin: Dashboard, memory_plugins: tuple[Any, MemorySource, MemoryTarget]) -> None:
    memory_plugins[2].fail_ids.add("m3")
    run_sync(admin.workspace)  # as `invoicesync sync` does
    page = admin.client.get("/history").text
    assert "#1" in page and "new 25" in page and "24 delivered, 1 failed" in page
    run = admin.client.get("/history/1").text
    assert "injected failure" in run
    assert admin.client.get("/history/99").status_code == 404


def test_documents_are_paged_newest_first_by_keyset(admin: Dashboard, monkeypatch: pytest.MonkeyPatch) -> None:
    run_sync(admin.workspace)
    monkeypatch.setattr(_documents_pages, "PAGE_SIZE", 10)
    seen: list[str] = []
    url: str | None = "/documents"
    while url:
        page = admin.client.get(url).text
        seen += re.findall(r">(INV-\d{4})</a>", page)
        found = re.search(r'href="([^"]+)" id="next-page"', page)
        url = found.group(1).replace("&amp;", "&") if found else None
    newest_first = [r["number"] for r in admin.workspace.state._all(  # type: ignore[attr-defined]
        "SELECT number FROM documents ORDER BY rowid DESC")]
    assert seen == newest_first and len(set(seen)) == 25


def test_documents_say_how_many_match_and_more_than_when_the_count_stops(
        admin: Dashboard, monkeypatch: pytest.MonkeyPatch) -> None:
    run_sync(admin.workspace)
    monkeypatch.setattr(_documents_pages, "PAGE_SIZE", 10)
    monkeypatch.setattr(_documents_pages, "COUNT_CAP", 12)

    def matches(query: str) -> str:
        found = re.search(r'id="matches">([^<]+)<', admin.client.get(f"/documents?{query}").text)
        assert found, query
        return found.group(1)

    assert matches("") == "25 documents; 10 on this page."  # the whole library: counted exactly
    assert matches("status=delivered") == "More than 12 documents match these filters; 10 on this page."
    assert matches("q=inv-000") == "10 documents match these filters."  # INV-0000 to INV-0009
    assert matches("q=INV-0003") == "1 document matches these filters."
    assert matches("q=nobody") == "0 documents match these filters."


@pytest.mark.parametrize(("query", "expected"), [
    ("q=INV-0003", ["INV-0003"]),
    ("q=supplier&direction=sales", []),
    ("q=Supplier+NV&kind=invoice&account=memory&company=c1&since=2026-01-01&until=2026-01-01", 25),
    ("q=%25", []),  # a % is searched as itself, not as a wildcard
    ("status=failed&target=memtarget", ["INV-0007"]),
    ("status=delivered&deleted=hide", 23),
])
def test_documents_filters(admin: Dashboard, memory_plugins: tuple[Any, MemorySource, MemoryTarget],
                           query: str, expected: list[str] | int) -> None:
    source, target = memory_plugins[1], memory_plugins[2]
    target.fail_ids.add("m7")
    run_sync(admin.workspace)
    source.touch("m5", deleted=True)
    run_sync(admin.workspace)
    numbers = re.findall(r">(INV-\d{4})</a>", admin.client.get(f"/documents?{query}").text)
    assert (len(numbers) if isinstance(expected, int) else numbers) == expected


def test_documents_show_the_status_per_target_with_reasons_and_mark_deletions(
        admin: Dashboard, memory_plugins: tuple[Any, MemorySource, MemoryTarget]) -> None:
    memory_plugins[2].fail_ids.add("m7")
    run_sync(admin.workspace)
    memory_plugins[1].touch("m5", deleted=True)
    run_sync(admin.workspace)
    page = admin.client.get("/documents?q=INV-000").text
    row7 = page.split(">INV-0007<")[1].split("</tr>")[0]
    assert 'badge failed' in row7 and "injected failure" in row7
    row5 = page.split(">INV-0005<")[1].split("</tr>")[0]
    assert "badge deleted" in row5
    assert '<tr class="deleted">' in page


def test_a_document_page_shows_its_data_files_preview_and_delivery_history(
        admin: Dashboard, memory_plugins: tuple[Any, MemorySource, MemoryTarget]) -> None:
    memory_plugins[2].fail_ids.add("m2")
    run_sync(admin.workspace)
    memory_plugins[2].fail_ids.clear()
    run_sync(admin.workspace)
    document_id = "memory:memory:c1:m2"
    page = admin.client.get(f"/document?id={document_id}").text
    assert "INV-0002" in page and "Supplier NV" in page and "121.00 EUR" in page
    preview = re.search(r'<iframe id="pdf-preview" title="PDF preview" src="([^"]+)"', page)
    assert preview
    pdf = admin.client.get(preview.group(1).replace("&amp;", "&"))
    assert pdf.content == b"%PDF memory 2\n"
    assert pdf.headers["content-type"] == "application/pdf" and pdf.headers["content-disposition"].startswith("inline")
    history = page.split("<h2>History</h2>")[1]
    assert history.index("badge failed") < history.index("badge delivered")  # failed first, then delivered
    assert "injected failure" in history


def test_files_are_downloads_unless_a_pdf_preview_and_only_the_documents_own(admin: Dashboard) -> None:
    run_sync(admin.workspace)
    document = admin.workspace.state.get_document("memory:memory:c1:m1")
    assert document is not None and document.pdf is not None
    sha = document.pdf.sha256
    download = admin.client.get(f"/document/file?id={document.id}&sha={sha}")
    assert download.headers["content-type"] == "application/octet-stream"
    assert download.headers["content-disposition"].startswith("attachment")
    other = admin.workspace.state.get_document("memory:memory:c1:m2")
    assert other is not None and other.pdf is not None
    # a file of another document is not reachable through this one
    assert admin.client.get(f"/document/file?id={document.id}&sha={other.pdf.sha256}").status_code == 404
    assert admin.client.get("/document?id=nope").status_code == 404


def test_metrics_count_imported_delivered_and_failed(admin: Dashboard,
                                                     memory_plugins: tuple[Any, MemorySource, MemoryTarget]) -> None:
    memory_plugins[2].fail_ids.update({"m1", "m2"})
    run_sync(admin.workspace)
    samples = metric_samples(admin.client.get("/metrics").text)
    assert samples["invoicesync_documents_imported", (("account", "memory"),)] == 25
    assert samples["invoicesync_deliveries", (("status", "delivered"), ("target", "memtarget"))] == 23
    assert samples["invoicesync_deliveries", (("status", "failed"), ("target", "memtarget"))] == 2
    assert samples["invoicesync_deliveries", (("status", "skipped"), ("target", "memtarget"))] == 0
