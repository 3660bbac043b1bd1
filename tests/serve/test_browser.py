"""The dashboard end to end in a real browser, against the sandboxes, as a person uses it: log in;
+ Import Billit through its OAuth login in a popup and choose two of its three companies; + Export
Dropbox (its OAuth login in a popup) and Business Central (its settings form, the secret in a
password field, a company chosen); Sync now and watch the live progress; every document on the
Documents page with its status at each target, checked against the sandboxes' own stores; filter;
a document's PDF; a forged CSRF token refused; disconnect.

Everything goes through the pages (no API shortcut): the sandboxes are only read, to check.
Chromium is Debian's (/usr/bin/chromium; `make browsers` installs it): Playwright's own browser
download is not used. A missing Chromium fails this test, never skips it. Screenshots of the pages
go to docs/screenshots/ (the README and docs/serve.md show them).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from .browser_world import SECOND_BC_COMPANY, World, alnum, world_fixture  # noqa: F401 - the fixture
from .conftest import ADMIN, PASSWORD

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def wait_closed(page: Any, popup: Any) -> None:
    deadline = time.monotonic() + 10
    while not popup.is_closed():  # it may have closed before a "close" listener could be added
        assert time.monotonic() < deadline, "the login popup did not close itself"
        page.wait_for_timeout(100)


def import_billit(page: Any, world: World, expect: Any) -> list[Any]:
    """+ Import → Billit → its login page in a popup → two of the three companies. The chosen companies."""
    from invoicesync_billit.sandbox.app import DEMO_CLIENT_SECRET, DEMO_USER

    settings = {k: str(v) for k, v in world.billit.oauth_settings(world.billit_url).items()}
    page.click("nav >> text=+ Import")
    page.click("text=Billit")
    page.fill("input[name=name]", "books")
    page.select_option("select[name=environment]", settings["environment"])
    page.select_option("select[name=auth]", "oauth")
    for name in ("api_url", "login_url", "client_id"):
        page.fill(f"input[name={name}]", settings[name])
    assert page.get_attribute("input[name=client_secret]", "type") == "password"
    page.fill("input[name=client_secret]", DEMO_CLIENT_SECRET)
    page.click("form.stack button[type=submit]")
    expect(page.locator("#oauth-login")).to_be_visible()
    shot(page, "connect-oauth")
    with page.expect_popup() as opened:
        page.click("#oauth-login")
    popup = opened.value
    popup.fill("input[name=email]", DEMO_USER[0])
    popup.fill("input[name=password]", DEMO_USER[1])
    popup.click("button[value=approve]")
    # back on /oauth/callback the popup sends the dashboard on to the checklist and closes
    expect(page).to_have_url(re.compile(r"/connect/oauth/"))
    wait_closed(page, popup)
    boxes = page.locator("input[name=company]")
    expect(boxes).to_have_count(len(world.billit.companies))
    shot(page, "connect-companies")
    chosen = world.billit.companies[:2]
    for company in chosen:
        page.check(f"input[name=company][value='{company.party_id}']")
    page.click("button[type=submit].primary")
    expect(page).to_have_url(re.compile(r"/sync$"))
    expect(page.locator("p.notice")).to_contain_text("Connected books")
    return chosen


def export_to_dropbox(page: Any, world: World, expect: Any) -> None:
    """+ Export → Dropbox → its consent page in a popup (it approves at once) → back, connected."""
    page.click("nav >> text=+ Export")
    expect(page.locator("ul.plugins")).to_contain_text("Dropbox")
    expect(page.locator("ul.plugins")).to_contain_text("Business Central")
    shot(page, "connect-export")
    page.click("ul.plugins >> text=Dropbox")
    page.fill("input[name=name]", "dropbox")
    url = world.dropbox_url
    for name, value in {"app_key": world.dropbox.oauth.app_key, "api_url": url, "content_url": url,
                        "authorize_url": f"{url}/oauth2/authorize", "token_url": f"{url}/oauth2/token"}.items():
        page.fill(f"input[name={name}]", value)
    page.click("form.stack button[type=submit]")
    with page.expect_popup() as opened:
        page.click("#oauth-login")
    wait_closed(page, opened.value)
    expect(page).to_have_url(re.compile(r"/sync$"))
    expect(page.locator("p.notice")).to_contain_text("Connected dropbox")


def export_to_business_central(page: Any, world: World, expect: Any) -> None:
    """+ Export → Business Central: tenant, client id, the secret, the environment, then its company."""
    from invoicesync_dynamics365.sandbox import DEMO_CLIENT_ID, DEMO_COMPANY, DEMO_SECRET

    page.click("nav >> text=+ Export")
    page.click("ul.plugins >> text=Business Central")
    page.fill("input[name=name]", "bc")
    for name, value in {"tenant": world.bc.entra.tenant, "client_id": DEMO_CLIENT_ID, "environment": "production",
                        "authority_host": world.bc_url, "api_host": world.bc_url, "ca_bundle": world.bc_ca}.items():
        page.fill(f"input[name={name}]", value)
    assert page.get_attribute("input[name=client_secret]", "type") == "password"
    page.fill("input[name=client_secret]", DEMO_SECRET)
    page.check("input[name=create_missing_vendors]")  # the sandbox tenant knows none of the suppliers
    shot(page, "connect-form")
    page.click("form.stack button[type=submit]")
    # the login reached two companies: one is chosen (a target exports into one)
    choices = page.locator("input[name=company]")
    expect(choices).to_have_count(2)
    assert page.locator(f"label.check:has-text('{SECOND_BC_COMPANY}')").count() == 1
    page.locator(f"label.check:has-text('{DEMO_COMPANY}') input").check()
    page.click("form.stack button[type=submit]")
    expect(page).to_have_url(re.compile(r"/sync$"))
    expect(page.locator("p.notice")).to_contain_text("Connected bc")


def sync_and_watch(page: Any, world: World, expect: Any) -> None:
    """Sync now with Billit held: the progress list is redrawn by server-sent events (the page is
    not reloaded), then Billit answers and the summary comes."""
    world.hold_billit()
    with page.expect_request(re.compile(r"/sync/events$")):
        page.click("#sync-all")
    page.evaluate("() => { window.notReloaded = true; document.getElementById('job-tasks').replaceChildren(); }")
    expect(page.locator("#job-tasks li").first).to_be_visible()  # only the event stream can put it back
    assert page.evaluate("() => window.notReloaded === true")
    shot(page, "sync-progress")
    world.release_billit()
    expect(page.locator("#job-summary")).to_contain_text("Exit code 0", timeout=90_000)
    expect(page.locator("#job-summary")).to_contain_text("dropbox: delivered")
    shot(page, "sync")


def test_connect_sync_and_browse_end_to_end(world: World) -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browsers` (the browser test never skips)")
    from playwright.sync_api import expect, sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1360, "height": 900}).new_page()
        page.set_default_timeout(30_000)

        # no session: every page sends the browser to the login first
        page.goto(f"{world.dashboard}/documents")
        expect(page).to_have_url(re.compile(r"/login\?next=/documents$"))
        shot(page, "login")
        page.fill("input[name=username]", ADMIN)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        expect(page).to_have_url(re.compile(r"/documents$"))

        chosen = import_billit(page, world, expect)
        export_to_dropbox(page, world, expect)
        export_to_business_central(page, world, expect)
        sync_and_watch(page, world, expect)
        check_documents(page, world, chosen, expect)

        page.click("nav >> text=History")
        expect(page.locator("tbody tr").first).to_contain_text("#1")
        shot(page, "history")

        refuse_forged_csrf_then_disconnect(page, world, expect)
        browser.close()


def check_documents(page: Any, world: World, chosen: list[Any], expect: Any) -> None:
    """Every document of the chosen companies, delivered to Dropbox, and to Business Central when it
    is a purchase (sales documents are skipped there, with the reason); the sandboxes agree."""
    held = [order for company in chosen for order in company.orders.values()]
    # what an account imports by default (``order_types``): invoices and credit notes, not offers,
    # delivery notes or order forms
    orders = [o for o in held if o["OrderType"] in ("Invoice", "CreditNote")]
    purchases = {o["OrderNumber"] for o in orders if o["OrderDirection"] == "Cost"}
    assert purchases and len(purchases) < len(orders), "the seed must give purchases and sales"
    page.click("nav >> text=Documents")
    expect(page.locator("#matches")).to_have_text(f"{len(orders)} documents.")
    headers = page.locator("table.documents thead th").all_inner_texts()
    dropbox_at, bc_at = headers.index("dropbox"), headers.index("bc")
    rows = page.locator("table.documents tbody tr")
    seen: dict[str, list[str]] = {}
    for row in range(rows.count()):
        cells = rows.nth(row).locator("td").all_inner_texts()
        seen[cells[1].strip()] = [cells[dropbox_at].strip(), cells[bc_at].strip()]
    assert set(seen) == {o["OrderNumber"] for o in orders}
    for number, (at_dropbox, at_bc) in seen.items():
        assert at_dropbox == "delivered", (number, at_dropbox)
        if number in purchases:
            assert at_bc == "delivered", (number, at_bc)
        else:
            assert at_bc.startswith("skipped") and "sales documents are not exported" in at_bc, (number, at_bc)
    shot(page, "documents")

    # the sandboxes' own stores: each document's files in Dropbox (a PDF, or what it has: a scanned
    # receipt), a draft in Business Central for each purchase
    files = [alnum(e.display) for e in world.dropbox.namespace.entries.values() if e.kind == "file"]
    for number in seen:
        assert any(alnum(number) in name for name in files), f"no file of {number} in the Dropbox sandbox: {files}"
    company = world.bc.company_by_name("CRONUS BE Demo")
    drafts = [*(d.get("vendorInvoiceNumber") for d in company.documents["purchaseInvoices"].values()),
              *(d.get("vendorCreditMemoNumber") for d in company.documents["purchaseCreditMemos"].values())]
    assert sorted(drafts) == sorted(purchases)
    assert not world.bc.company_by_name(SECOND_BC_COMPANY).documents["purchaseInvoices"]

    # filter by company: only that company's rows
    second = chosen[1]
    page.select_option("select[name=company]", label=second.party["Name"])
    page.click("#filters button[type=submit]")
    in_second = [o for o in orders if o["CompanyID"] == second.party_id]
    expect(page.locator("#matches")).to_have_text(f"{len(in_second)} documents match these filters.")
    companies = {cells.strip() for cells in rows.locator("td:nth-child(5)").all_inner_texts()}
    assert companies == {second.party["Name"]}
    # and by status at one target: the sales documents Business Central skipped, with the reason
    page.select_option("select[name=company]", "")
    page.select_option("select[name=status]", "skipped")
    page.select_option("select[name=target]", "bc")
    page.click("#filters button[type=submit]")
    skipped = len(orders) - len(purchases)
    expect(rows).to_have_count(skipped)
    assert {t.strip() for t in rows.locator("td:nth-child(2)").all_inner_texts()} == set(seen) - purchases
    expect(rows.first).to_contain_text("sales documents are not exported")
    shot(page, "documents-filtered")
    page.click("text=Clear")
    expect(page.locator("#matches")).to_have_text(f"{len(orders)} documents.")
    number = rows.first.locator("td").nth(1).locator("a").inner_text()
    page.fill("input[name=q]", number.lower())  # any case
    page.click("#filters button[type=submit]")
    expect(rows).to_have_count(1)
    expect(page.locator("#matches")).to_have_text("1 document matches these filters.")

    # its page: the PDF preview loads (200, application/pdf, the PDF's bytes)
    with page.expect_response(re.compile(r"/document/file\?.*inline=1")) as pdf:
        rows.first.locator("a").first.click()
    assert pdf.value.status == 200 and pdf.value.headers["content-type"] == "application/pdf"
    # Chromium hands the response to its PDF viewer (what the page shows); fetch the bytes themselves
    # with the same session to see that they are the PDF
    assert page.request.get(pdf.value.url).body().startswith(b"%PDF")
    expect(page.locator("iframe#pdf-preview")).to_be_visible()
    expect(page.locator("h1")).to_contain_text(number)
    page.wait_for_timeout(3000)  # let the PDF viewer paint before the screenshot (slow on a loaded machine)
    shot(page, "document")


def refuse_forged_csrf_then_disconnect(page: Any, world: World, expect: Any) -> None:
    page.click("nav >> text=Sync")
    row = page.locator("tr", has=page.locator("td:first-child", has_text=re.compile(r"^dropbox$")))
    expect(row).to_have_count(1)
    page.on("dialog", lambda dialog: dialog.accept())  # the "Disconnect dropbox?" confirm
    # a form whose CSRF token is not the session's is refused, and changes nothing
    row.locator("form[action='/accounts/disconnect'] input[name=csrf]").evaluate("input => input.value = 'forged'")
    with page.expect_response(re.compile(r"/accounts/disconnect$")) as refused:
        row.locator("button.danger").click()
    assert refused.value.status == 403
    assert "dropbox" in {a.name for a in world.workspace.accounts()}

    page.goto(f"{world.dashboard}/sync")
    row.locator("button.danger").click()
    expect(page.locator("p.notice")).to_have_text("Disconnected dropbox.")
    expect(row).to_have_count(0)
    expect(page.locator("table").nth(1)).to_contain_text("bc")
    assert {a.name for a in world.workspace.accounts()} == {"books", "bc"}
    assert world.workspace.secrets("dropbox").get("oauth_token") is None
