"""`invoicesync new-plugin` renders the bundled template into packages that pass their own
conformance suites, so the template cannot rot.

Installing: the venv's setuptools cannot build without network (build isolation), so each
generated package is made importable the way an install would: its ``src`` on ``PYTHONPATH``
plus a ``.dist-info`` whose ``entry_points.txt`` is written *from the generated pyproject.toml*.
Discovery then goes through the real entry point, exactly as after ``pip install``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

RUFF = Path(sys.executable).parent / "ruff"
ROOT = Path(__file__).parent.parent


def generate(cli: Callable[..., Result], tmp_path: Path, name: str, kind: str) -> Path:
    folder = tmp_path / name
    result = cli("new-plugin", name, "--kind", kind, "--dir", folder)
    assert result.exit_code == 0, result.output
    return folder


def install_for_tests(project: Path, site: Path) -> str:
    """Register the generated package's entry points from its pyproject; return a PYTHONPATH."""
    meta = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    info = site / f"{meta['name'].replace('-', '_')}-{meta['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n")
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{key} = {value}\n" for key, value in entries.items()) + "\n"
        for group, entries in meta["entry-points"].items()))
    return os.pathsep.join([str(project / "src"), str(site)])


def run_pytest(project: Path, pythonpath: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INVOICESYNC_", "PYTEST_"))}
    env.update(PYTHONPATH=pythonpath, XDG_CACHE_HOME=str(tmp_path / "cache"))
    # --basetemp: the inner run's temporary folders go under this test's, which pytest cleans
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           f"--basetemp={tmp_path / 'inner'}", *args], cwd=project,
                          env=env, capture_output=True, text=True, timeout=240, check=False)


@pytest.mark.parametrize(("kind", "group", "tests"), [
    ("source", "invoicesync.sources", 12),  # 7 conformance checks + 5 on the login (one the dashboard's)
    ("target", "invoicesync.targets", 9),  # 9 conformance checks
])
def test_generated_plugin_passes_its_own_conformance_suite(
        invoicesync_cli: Callable[..., Result], tmp_path: Path, kind: str, group: str, tests: int) -> None:
    name = f"acme_{kind}"
    project = generate(invoicesync_cli, tmp_path, name, kind)
    meta = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    assert meta["name"] == f"invoicesync-acme-{kind}"
    assert meta["entry-points"][group] == {name: f"invoicesync_{name}.plugin"}
    for path in ("README.md", f"src/invoicesync_{name}/plugin.py", f"src/invoicesync_{name}/sandbox.py",
                 f"src/invoicesync_{name}/py.typed", "tests/test_conformance.py"):
        assert (project / path).is_file(), path
    code = "".join(f.read_text() for f in (project / "src").rglob("*.py"))
    # Settings are read typed (a new plugin starts with no casts), never through the untyped attribute.
    assert "ctx.settings_as(" in code and not re.search(r"ctx\.settings\b", code)
    if RUFF.exists():
        lint = subprocess.run([str(RUFF), "check", "--config", str(ROOT / "pyproject.toml"), str(project)],
                              capture_output=True, text=True, check=False)
        assert lint.returncode == 0, lint.stdout
    result = run_pytest(project, install_for_tests(project, tmp_path / "site"), tmp_path)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert f"{tests} passed" in summary and "skipped" not in summary, summary


BLIND = """
import pytest
from invoicesync_acme_target import plugin
from invoicesync.testing.conformance import StoredObject, TargetConformance


class TestBlind(TargetConformance):
    plugin = "acme_target"
    write_path = r"/api/files$"

    @pytest.fixture(autouse=True)
    def write_blind(self, monkeypatch):
        # The bug: never look up, before writing or after a lost answer.
        monkeypatch.setattr(plugin, "_place", lambda client, planned, sha: (planned, None))
        monkeypatch.setattr(plugin, "_upload", lambda client, path, sha, size, ctx:
                            client.create(path, lambda: ctx.blobs.iter_chunks(sha), size))

    def stored_objects(self, env):
        return [StoredObject(f.path, f.sha256, f.size, str(f.revision)) for f in env.app.files()]
"""


def test_the_wire_crash_check_fails_on_a_target_that_writes_blind(
        invoicesync_cli: Callable[..., Result], tmp_path: Path) -> None:
    project = generate(invoicesync_cli, tmp_path, "acme_target", "target")
    (project / "tests" / "test_blind.py").write_text(BLIND)
    result = run_pytest(project, install_for_tests(project, tmp_path / "site"), tmp_path,
                        "tests/test_blind.py", "-k", "unknown_outcome_on_the_wire")
    assert "1 failed" in result.stdout.strip().splitlines()[-1], result.stdout[-3000:]


def test_new_plugin_refuses_bad_names_and_folders_in_use(
        invoicesync_cli: Callable[..., Result], tmp_path: Path) -> None:
    bad = invoicesync_cli("new-plugin", "Acme-Pay", "--kind", "source", "--dir", tmp_path / "x")
    assert bad.exit_code == 2 and "lowercase" in bad.output
    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("mine")
    taken = invoicesync_cli("new-plugin", "acme", "--kind", "target", "--dir", used)
    assert taken.exit_code == 2 and "not empty" in taken.output
    assert [p.name for p in used.iterdir()] == ["keep.txt"]
