"""What each distribution promises pip: its dependencies, its version range, its metadata.

`make dist-check` installs the built files into fresh venvs; these checks say *why* early and cheaply:
every third-party import is declared, versions follow docs/versioning.md, metadata is complete,
and the plugin template generates the same.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from invoicesync import hookspecs
from invoicesync.cli._new_plugin import render_plugin
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).parent.parent
PROJECTS = {"core": ROOT / "core", **{p.name: p for p in sorted((ROOT / "plugins").iterdir())
                                      if (p / "pyproject.toml").exists()}}
PLUGINS = [name for name in PROJECTS if name != "core"]
#: Imported only when present, never required: `plugins install` looks for uv when there is no pip.
FOUND_AT_RUN_TIME = {"uv"}
#: Dependencies used without an import: tzdata is the time-zone database zoneinfo reads.
READ_NOT_IMPORTED = {"tzdata"}


def pyproject(project: Path) -> dict[str, Any]:
    return tomllib.loads((project / "pyproject.toml").read_text())


def requirements(meta: dict[str, Any], *, extras: bool = True) -> list[Requirement]:
    found = [Requirement(r) for r in meta.get("dependencies", [])]
    if extras:
        found += [Requirement(r) for group in meta.get("optional-dependencies", {}).values() for r in group]
    return found


def imported_modules(source: Path) -> set[str]:
    """Top-level names of every absolute import in a source tree."""
    names = set()
    for file in source.rglob("*.py"):
        for node in ast.walk(ast.parse(file.read_text(), str(file))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("name", PROJECTS)
def test_every_distribution_declares_what_it_imports(name: str) -> None:
    project = PROJECTS[name]
    meta = pyproject(project)["project"]
    declared = {canonicalize_name(r.name) for r in requirements(meta)}
    own = {p.name for p in (project / "src").iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}
    providers = metadata.packages_distributions()
    undeclared = {}
    for module in sorted(imported_modules(project / "src") - own - set(sys.stdlib_module_names) - FOUND_AT_RUN_TIME):
        distributions = {canonicalize_name(d) for d in providers.get(module, [module])}
        if not distributions & declared:
            undeclared[module] = sorted(distributions)
    assert not undeclared, f"{meta['name']} imports these without declaring them: {undeclared}"


@pytest.mark.parametrize("name", PROJECTS)
def test_every_dependency_is_used(name: str) -> None:
    """authlib was a dependency for three one-line helpers: what is declared must be imported."""
    project = PROJECTS[name]
    providers = metadata.packages_distributions()
    used = {canonicalize_name(d) for m in imported_modules(project / "src") for d in providers.get(m, [m])}
    unused = [r.name for r in requirements(pyproject(project)["project"], extras=False)
              if canonicalize_name(r.name) not in used | READ_NOT_IMPORTED]
    assert not unused, f"{name} declares, but never imports: {unused}"


def test_versions_follow_the_hook_api() -> None:
    """docs/versioning.md: invoicesync 0.N.* speaks hook API N and still drives N-1."""
    api = hookspecs.API_VERSION
    assert api - 1 >= hookspecs.MIN_API_VERSION, "a core line must keep driving the previous hook API"
    versions = {name: Version(pyproject(project)["project"]["version"]) for name, project in PROJECTS.items()}
    assert versions["core"].release[:2] == (0, api), f"core is {versions['core']}, hook API is {api}"
    assert set(versions.values()) == {versions["core"]}, f"the bundled connectors are released with core: {versions}"
    for name, project in PROJECTS.items():
        package = next((project / "src").glob("invoicesync*/__init__.py"))
        assert f'__version__ = "{versions[name]}"' in package.read_text(), f"{package} disagrees with its pyproject"


@pytest.mark.parametrize("name", PLUGINS)
def test_each_plugin_requires_exactly_the_cores_that_drive_it(name: str) -> None:
    module = __import__(f"invoicesync_{name}.plugin", fromlist=["plugin_info"])
    low, high = module.plugin_info().api_version
    assert low <= hookspecs.API_VERSION <= high, f"{name} does not support this core's hook API"
    core = [r for r in requirements(pyproject(PROJECTS[name])["project"]) if r.name == "invoicesync"]
    assert [str(r.specifier) for r in core] == [str(SpecifierSet(f">=0.{high},<0.{high + 2}"))], (
        f"{name} (hook API {low}..{high}) must require invoicesync>=0.{high},<0.{high + 2}")


def test_core_extras_name_the_connectors_of_its_own_line() -> None:
    meta = pyproject(PROJECTS["core"])["project"]
    line = SpecifierSet(f">=0.{hookspecs.API_VERSION},<0.{hookspecs.API_VERSION + 1}")
    named: set[str] = set()
    for group, entries in meta["optional-dependencies"].items():
        for requirement in map(Requirement, entries):
            if requirement.name.startswith("invoicesync-"):
                assert requirement.specifier == line, f"[{group}] {requirement} should be {requirement.name}{line}"
                named.add(requirement.name)
    everything = {r.name for r in map(Requirement, meta["optional-dependencies"]["all"])}
    assert everything == named == {f"invoicesync-{p}" for p in PLUGINS}


def check_metadata(project: Path, meta: dict[str, Any], build: dict[str, Any]) -> None:
    assert meta["license"] == "Apache-2.0" and meta["license-files"] == ["LICENSE"]
    assert (project / "LICENSE").read_text() == (ROOT / "LICENSE").read_text()
    assert meta["classifiers"] and not [c for c in meta["classifiers"] if c.startswith("License ::")], (
        "classifiers, but no License :: one (setuptools refuses them next to an SPDX license)")
    assert {"Homepage", "Source", "Issues"} <= set(meta["urls"])
    readme = (project / meta["readme"]).read_text()
    assert len(readme.splitlines()) >= 20, f"{project / meta['readme']} is too short for a PyPI page"
    # 77 reads SPDX `license` strings and `license-files`; older setuptools fail on them.
    assert build["requires"] == ["setuptools>=77"]


@pytest.mark.parametrize("name", PROJECTS)
def test_metadata_is_complete(name: str) -> None:
    data = pyproject(PROJECTS[name])
    check_metadata(PROJECTS[name], data["project"], data["build-system"])


@pytest.mark.parametrize("kind", ["source", "target"])
def test_the_plugin_template_generates_the_same_metadata(tmp_path: Path, kind: str) -> None:
    project = render_plugin("acme", kind, tmp_path / "acme")
    data = pyproject(project)
    check_metadata(project, data["project"], data["build-system"])
    api = hookspecs.API_VERSION
    assert data["project"]["dependencies"] == [f"invoicesync>=0.{api},<0.{api + 2}"]


def test_a_tls_sandbox_without_trustme_is_a_clear_error_the_demo_can_report(monkeypatch: pytest.MonkeyPatch) -> None:
    """trustme is a dependency now; should an environment still lack it, `invoicesync demo` skips
    the TLS sandbox with this reason (it catches InvoiceSyncError) instead of dying on a traceback."""
    from invoicesync import ConfigError
    from invoicesync.sandbox import SandboxApp, serve

    monkeypatch.setitem(sys.modules, "trustme", None)  # what `import trustme` sees when it is not installed
    with pytest.raises(ConfigError, match="needs trustme"):
        serve(SandboxApp(), tls=True)
