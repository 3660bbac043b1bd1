"""The dashboard in a real browser: log in, sync the demo sandboxes, filter and find a document, see
its PDF, look at the history and at adding an export.

Chromium is Debian's (/usr/bin/chromium; `make browsers` installs it): Playwright's own browser
download is not used. A missing Chromium fails this test, never skips it. Screenshots of the pages
go to docs/screenshots/ (the README and docs/serve.md show them).
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from invoicesync.accounts import connect, connect_to_sandbox
from invoicesync.context import NonInteractiveUI, PluginKind
from invoicesync.plugins import Plugins
from invoicesync.sandbox import serve
from invoicesync.server import Users, create_app
from invoicesync.workspace import Workspace

from .conftest import ADMIN, PASSWORD

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def demo_dashboard(invoicesync_home: Path, tmp_path: Path) -> Iterator[str]:
    """The dashboard on loopback over a home connected to the Billit sandbox and a local folder."""
    workspace = Workspace.open(invoicesync_home, plugins=Plugins.discover())
    sandboxes = []
    # as `invoicesync demo` does: the Billit sandbox, every target plugin's sandbox, a local folder
    names = ["billit", *(p.name for p in workspace.plugins.of_kind(PluginKind.TARGET) if "sandbox" in p.hooks)]
    for name in names:
        app = workspace.plugins.call(name, "sandbox", options={"documents": 6, "seed": 1})
        sandboxes.append(serve(app, tls=getattr(app, "tls", False), tls_dir=invoicesync_home / "sandbox-ca" / name))
        connect_to_sandbox(workspace, name, sandboxes[-1], name=f"demo-{name}")
    connect(workspace, "localfs", ui=NonInteractiveUI(), name="demo-folder", settings={"root": str(tmp_path / "out")})
    Users(invoicesync_home).add(ADMIN, PASSWORD)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(workspace), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the dashboard did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        for sandbox in sandboxes:
            sandbox.stop()
        workspace.close()


def test_log_in_sync_the_sandboxes_filter_and_preview_a_pdf(demo_dashboard: str) -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browsers` (the browser test never skips)")
    from playwright.sync_api import expect, sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1360, "height": 900})
        page.set_default_timeout(30_000)

        page.goto(f"{demo_dashboard}/documents")
        expect(page).to_have_url(re.compile(r"/login\?next=/documents$"))
        page.screenshot(path=str(SCREENSHOTS / "login.png"), full_page=True)
        page.fill("input[name=username]", ADMIN)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        expect(page).to_have_url(re.compile(r"/documents$"))

        page.goto(f"{demo_dashboard}/sync")
        page.click("#sync-all")
        # live progress over server-sent events; the page reloads with the summary when it is done
        expect(page.locator("#job-summary")).to_contain_text("Exit code 0", timeout=90_000)
        page.screenshot(path=str(SCREENSHOTS / "sync.png"), full_page=True)

        page.click("nav >> text=Documents")
        rows = page.locator("table.documents tbody tr")
        expect(rows.first).to_contain_text("delivered")
        total = rows.count()
        assert total >= 2
        expect(page.locator("#matches")).to_have_text(f"{total} documents.")
        page.screenshot(path=str(SCREENSHOTS / "documents.png"), full_page=True)
        # the status filter at one target: Business Central skips the sales documents, with the reason
        page.select_option("select[name=status]", "skipped")
        page.select_option("select[name=target]", "demo-dynamics365")
        page.click("#filters button[type=submit]")
        expect(page.locator("#matches")).to_contain_text("match these filters")
        assert 0 < rows.count() < total
        expect(rows.first).to_contain_text("sales documents are not exported")
        page.screenshot(path=str(SCREENSHOTS / "documents-filtered.png"), full_page=True)
        page.click("text=Clear")
        expect(page.locator("#matches")).to_have_text(f"{total} documents.")
        number = rows.first.locator("td").nth(1).locator("a").inner_text()
        page.fill("input[name=q]", number.lower())  # any case
        page.click("#filters button[type=submit]")
        expect(rows).to_have_count(1)
        expect(page.locator("#matches")).to_have_text("1 document matches these filters.")

        with page.expect_response(re.compile(r"/document/file\?.*inline=1")) as pdf:
            rows.first.locator("a").first.click()
        assert pdf.value.status == 200 and pdf.value.headers["content-type"] == "application/pdf"
        # Chromium hands the response to its PDF viewer (what the page shows); fetch the bytes themselves
        # with the same session to see that they are the PDF
        assert page.request.get(pdf.value.url).body().startswith(b"%PDF")
        expect(page.locator("iframe#pdf-preview")).to_be_visible()
        expect(page.locator("h1")).to_contain_text(number)
        page.wait_for_timeout(4000)  # let the PDF viewer paint before the screenshot (slow on a loaded machine)
        page.screenshot(path=str(SCREENSHOTS / "document.png"), full_page=True)

        page.click("nav >> text=History")
        expect(page.locator("tbody tr").first).to_contain_text("#1")
        page.screenshot(path=str(SCREENSHOTS / "history.png"), full_page=True)

        page.click("nav >> text=+ Export")
        expect(page.locator("ul.plugins")).to_contain_text("Local folder")
        page.screenshot(path=str(SCREENSHOTS / "connect-export.png"), full_page=True)
        page.click("text=Local folder")
        expect(page.locator("form.stack")).to_be_visible()
        page.screenshot(path=str(SCREENSHOTS / "connect-form.png"), full_page=True)
        browser.close()


@pytest.fixture
def billit_dashboard(invoicesync_home: Path) -> Iterator[tuple[str, str, dict[str, str]]]:
    """The dashboard on loopback with no account yet, and a Billit sandbox that has the dashboard's
    ``/oauth/callback`` registered for its OAuth client (as Billit support would register it)."""
    workspace = Workspace.open(invoicesync_home, plugins=Plugins.discover(["billit"]))
    app = workspace.plugins.call("billit", "sandbox", options={"documents": 2, "seed": 5})
    sandbox = serve(app, tls=getattr(app, "tls", False), tls_dir=invoicesync_home / "sandbox-ca" / "billit")
    Users(invoicesync_home).add(ADMIN, PASSWORD)
    port = _free_port()
    app.oauth.register_redirect(f"http://127.0.0.1:{port}/oauth/callback")
    settings = {k: str(v) for k, v in app.oauth_settings(sandbox.url).items()}
    if sandbox.ca_file:
        settings["ca_bundle"] = str(sandbox.ca_file)
    server = uvicorn.Server(uvicorn.Config(create_app(workspace), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the dashboard did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", sandbox.url, settings
    finally:
        server.should_exit = True
        thread.join(30)
        sandbox.stop()
        workspace.close()


def test_import_billit_with_its_oauth_login_in_a_popup(billit_dashboard: tuple[str, str, dict[str, str]]) -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browsers` (the browser test never skips)")
    from invoicesync_billit.sandbox.app import DEMO_CLIENT_SECRET, DEMO_USER
    from playwright.sync_api import expect, sync_playwright

    dashboard, _, settings = billit_dashboard
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1360, "height": 900}, ignore_https_errors=True)
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(f"{dashboard}/login")
        page.fill("input[name=username]", ADMIN)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")

        page.click("nav >> text=+ Import")
        page.click("text=Billit")
        page.fill("input[name=name]", "books")
        page.select_option("select[name=environment]", settings["environment"])
        for name in ("api_url", "login_url", "client_id", "ca_bundle"):
            if name in settings:
                page.fill(f"input[name={name}]", settings[name])
        page.fill("input[name=client_secret]", DEMO_CLIENT_SECRET)
        page.click("form.stack button[type=submit]")
        expect(page.locator("#oauth-login")).to_be_visible()
        page.screenshot(path=str(SCREENSHOTS / "connect-oauth.png"), full_page=True)

        with page.expect_popup() as opened:
            page.click("#oauth-login")
        popup = opened.value
        popup.fill("input[name=email]", DEMO_USER[0])
        popup.fill("input[name=password]", DEMO_USER[1])
        popup.click("button[value=approve]")
        # back on /oauth/callback the popup sends the dashboard on to the checklist and closes
        expect(page).to_have_url(re.compile(r"/connect/oauth/"))
        deadline = time.monotonic() + 10
        while not popup.is_closed():  # it may have closed before a "close" listener could be added
            assert time.monotonic() < deadline, "the login popup did not close itself"
            page.wait_for_timeout(100)
        boxes = page.locator("input[name=company]")
        assert boxes.count() >= 2
        page.screenshot(path=str(SCREENSHOTS / "connect-companies.png"), full_page=True)
        boxes.first.check()
        page.click("button[type=submit].primary")
        expect(page).to_have_url(re.compile(r"/sync$"))
        expect(page.locator("p.notice")).to_contain_text("Connected books")
        browser.close()
