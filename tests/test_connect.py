"""Connecting: the company checklist, --company for scripts, and clear errors."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner
from invoicesync import Company, ConfigError
from invoicesync.accounts import choose_companies
from invoicesync.cli._ui import ClickUI
from invoicesync.context import NonInteractiveUI
from invoicesync.testing import ScriptedUI

COMPANIES = [Company(id="1", name="Acme BV"), Company(id="2", name="Beta NV"), Company(id="3", name="Gamma BV")]


def checklist(answers: str, *, multiple: bool = True) -> tuple[list[str], str]:
    picked: list[str] = []

    @click.command()
    def pick() -> None:
        picked.extend(ClickUI(interactive=True).choose(
            "Which companies?", [(c.id, c.name) for c in COMPANIES], multiple=multiple))

    result = CliRunner().invoke(pick, input=answers)
    assert result.exit_code == 0, result.output
    return picked, result.output


def test_the_checklist_takes_numbers_or_all_and_asks_again_on_nonsense() -> None:
    assert checklist("1,3\n")[0] == ["1", "3"]
    assert checklist("all\n")[0] == ["1", "2", "3"]
    picked, output = checklist("9\nx\n2\n")
    assert picked == ["2"] and output.count("Please answer with") == 2
    assert "[3] Gamma BV" in output


def test_a_single_choice_refuses_several() -> None:
    picked, output = checklist("1,2\n3\n", multiple=False)
    assert picked == ["3"] and "Please answer with one number" in output


def test_company_flags_for_scripts() -> None:
    ui = NonInteractiveUI()
    assert choose_companies(COMPANIES, ["2"], ui, multiple=True) == [COMPANIES[1]]
    assert choose_companies(COMPANIES, ["*"], ui, multiple=True) == COMPANIES
    with pytest.raises(ConfigError, match="cannot reach company 9; it can reach: 1 \\(Acme BV\\)"):
        choose_companies(COMPANIES, ["9"], ui, multiple=True)
    with pytest.raises(ConfigError, match="choose the companies with --company"):
        choose_companies(COMPANIES, [], ui, multiple=True)
    assert choose_companies(COMPANIES[:1], [], ui, multiple=True) == COMPANIES[:1]  # one: no question


def test_an_interactive_connect_uses_the_checklist() -> None:
    ui = ScriptedUI(choices=["1", "3"])
    assert [c.id for c in choose_companies(COMPANIES, [], ui, multiple=True)] == ["1", "3"]
