"""``invoicesync connect billit --company``: a PartyID or a company name; a name that several
companies share is an error that lists them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from invoicesync.sandbox import RunningSandbox
from invoicesync_billit.sandbox import BillitSandbox


def _connect(cli: Callable[..., Any], running: RunningSandbox, app: BillitSandbox, *companies: str) -> Any:
    args = [a for c in companies for a in ("--company", c)]
    settings = [a for k, v in app.account_settings(running.url).items() for a in ("--set", f"{k}={v}")]
    return cli("connect", "billit", "--name", "books", *args, *settings)


@pytest.fixture
def sandbox(serve_sandbox: Callable[..., RunningSandbox], monkeypatch: pytest.MonkeyPatch
            ) -> tuple[BillitSandbox, RunningSandbox]:
    app = BillitSandbox(documents=2, companies=3)
    monkeypatch.setenv("INVOICESYNC_BOOKS_API_KEY", app.account_secrets()["api_key"])
    return app, serve_sandbox(app)


def test_company_by_name_or_by_id(invoicesync_cli: Callable[..., Any],
                                  sandbox: tuple[BillitSandbox, RunningSandbox]) -> None:
    app, running = sandbox
    first, second = app.companies[0].party, app.companies[1].party
    result = _connect(invoicesync_cli, running, app, f"  {first['Name'].upper()} ", str(second["PartyID"]))
    assert result.exit_code == 0, result.output
    assert f"{first['Name']} ({first['PartyID']})" in result.output
    assert f"{second['Name']} ({second['PartyID']})" in result.output
    assert app.companies[2].party["Name"] not in result.output


def test_an_ambiguous_company_name_lists_the_candidates(invoicesync_cli: Callable[..., Any],
                                                         sandbox: tuple[BillitSandbox, RunningSandbox]) -> None:
    app, running = sandbox
    app.companies[2].party["Name"] = app.companies[0].party["Name"]  # two companies, one name
    result = _connect(invoicesync_cli, running, app, app.companies[0].party["Name"])
    assert result.exit_code != 0
    assert "more than one company is called" in result.output
    for company in (app.companies[0], app.companies[2]):
        assert str(company.party_id) in result.output
    assert str(app.companies[1].party_id) not in result.output
    # The id settles it.
    result = _connect(invoicesync_cli, running, app, str(app.companies[2].party_id))
    assert result.exit_code == 0, result.output


def test_an_unknown_company_names_what_the_login_reaches(invoicesync_cli: Callable[..., Any],
                                                         sandbox: tuple[BillitSandbox, RunningSandbox]) -> None:
    app, running = sandbox
    result = _connect(invoicesync_cli, running, app, "No Such Company BV")
    assert result.exit_code != 0 and "cannot reach company No Such Company BV" in result.output
    assert all(c.party["Name"] in result.output for c in app.companies)
