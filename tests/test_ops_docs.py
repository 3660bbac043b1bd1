"""docs/ops.md states the exit codes as the code has them, and its systemd unit alerts on partial runs."""

from __future__ import annotations

import re
from pathlib import Path

from invoicesync.pipeline import EXIT_FATAL, EXIT_OK, EXIT_PARTIAL

OPS = (Path(__file__).parent.parent / "docs" / "ops.md").read_text()


def section(title: str) -> str:
    found = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", OPS, re.S | re.M)
    assert found, f"docs/ops.md has no '## {title}' section"
    return found.group(1)


def test_the_exit_code_table_is_the_contract() -> None:
    codes = re.findall(r"^\| `(\d+)` \|", section("Exit codes"), re.M)
    assert codes == ["0", "1", "2", "75", "130", "143"]
    assert (EXIT_OK, EXIT_PARTIAL, EXIT_FATAL) == (0, 1, 2)


def test_the_systemd_unit_alerts_on_partial_runs() -> None:
    units = re.findall(r"```ini\n(.*?)```", OPS, re.S)
    service = next(u for u in units if "ExecStart=/opt/invoicesync/bin/invoicesync sync" in u)
    success = [line for line in service.splitlines() if line.startswith("SuccessExitStatus=")]
    assert all("1" not in line.split("=", 1)[1].split() for line in success), success  # exit 1 is not success
    assert re.search(r"^OnFailure=invoicesync-alert@%n\.service$", service, re.M)
    assert any(u.startswith("[Unit]\nDescription=Alert") and "ExecStart=" in u for u in units)
    assert any("[Timer]" in u and "OnCalendar=" in u for u in units)


def test_guarantees_and_retry_rules_have_their_sections() -> None:
    assert "Nothing lost" in section("Guarantees") and "Nothing twice" in section("Guarantees")
    section("Retry rules")
