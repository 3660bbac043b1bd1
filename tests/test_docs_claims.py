"""What README.md and docs/ops.md tell users about exit codes, retry rules and relogin is what the
code does."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner
from invoicesync.cli import cli
from invoicesync.pipeline import EXIT_FATAL, EXIT_OK, EXIT_PARTIAL
from invoicesync.pipeline._report import EXIT_BUSY, EXIT_INTERRUPTED, EXIT_TERMINATED

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()
OPS = (ROOT / "docs" / "ops.md").read_text()
CODES = (EXIT_OK, EXIT_PARTIAL, EXIT_FATAL, EXIT_BUSY, EXIT_INTERRUPTED, EXIT_TERMINATED)


def test_the_readme_names_every_exit_code_of_sync() -> None:
    assert CODES == (0, 1, 2, 75, 130, 143)
    stated = {int(code) for code in re.findall(r"\*\*(\d+)\*\*", README)}
    assert stated >= set(CODES), sorted(set(CODES) - stated)
    assert "flock" not in README or "no `flock`" in README  # the runner lock makes a wrapper needless


def test_ops_has_one_retry_rules_section_and_no_placeholders() -> None:
    assert len(re.findall(r"^## Retry rules$", OPS, re.M)) == 1
    assert "To be written" not in OPS


def test_the_relogin_docs_match_connect() -> None:
    logins = re.search(r"^## Logins.*?(?=^## )", OPS, re.S | re.M)
    assert logins
    text = " ".join(logins.group(0).split())
    assert "checklist is shown again" not in text  # a relogin keeps the chosen companies
    assert "keeps the account's settings and the companies chosen before" in text
    help_text = CliRunner().invoke(cli, ["connect", "--help"]).output
    for flag in ("--relogin", "--companies", "--company"):
        assert flag in text and flag in help_text, flag
