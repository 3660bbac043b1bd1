"""The docs site builds with warnings as errors, and the testing page keeps up with the suites."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from invoicesync.testing.conformance import SourceConformance, TargetConformance

ROOT = Path(__file__).parent.parent


def mkdocs() -> list[str]:
    if shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("mkdocs is not installed (it is in the dev extras)")
    return [sys.executable, "-m", "mkdocs"]


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    result = subprocess.run([*mkdocs(), "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
                             "--site-dir", str(tmp_path / "site")], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    for page in ("index", "ops", "architecture", "scale-out", "write-a-connector", "testing", "hooks"):
        assert (tmp_path / "site" / page / "index.html").is_file() or page == "index", page
    assert (tmp_path / "site" / "index.html").is_file()


def test_the_architecture_page_has_the_routing_section_the_hook_reference_links_to() -> None:
    assert "\n## Routing\n" in (ROOT / "docs" / "architecture.md").read_text()


@pytest.mark.parametrize("suite", [SourceConformance, TargetConformance], ids=lambda s: s.__name__)
def test_every_conformance_check_is_documented(suite: type) -> None:
    text = (ROOT / "docs" / "testing.md").read_text()
    checks = [name for name in dir(suite) if name.startswith("test_")]
    assert checks
    missing = [name for name in checks if f"`{name}`" not in text]
    assert not missing, f"docs/testing.md does not list {missing}"
