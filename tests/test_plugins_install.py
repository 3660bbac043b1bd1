"""``invoicesync plugins install``: a real wheel into a fresh environment, with pip and without it (uv).

The fresh environments see this checkout's installed packages (core and its dependencies) through
symlinks in their own site-packages, so nothing is fetched: the connector comes from a local
folder passed with ``--find-links`` and ``--no-index``, as a user installing from a wheelhouse would.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from invoicesync import __version__
from invoicesync.cli import cli
from invoicesync.hookspecs import API_VERSION

PLUGIN_MODULE = '''
from invoicesync import PluginInfo, PluginKind, hookimpl


@hookimpl
def plugin_info():
    return PluginInfo(kind=PluginKind.TARGET, title="Acme Vault", api_version=(1, {api}))


@hookimpl
def auth(account, ctx):
    return []


@hookimpl
def push_documents(account, requests, ctx):
    return iter(())
'''


def build_wheel(folder: Path, name: str = "invoicesync-acmevault", version: str = "1.0.0") -> Path:
    """A minimal, valid target-plugin wheel (the format is a zip with a dist-info and a RECORD)."""
    module = name.replace("-", "_")
    info = f"{module}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": "",
        # Written for the previous hook API, which this core still drives (docs/versioning.md).
        f"{module}/plugin.py": PLUGIN_MODULE.replace("{api}", str(API_VERSION - 1)),
        f"{info}/METADATA": (f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                             f"Requires-Dist: invoicesync<0.{API_VERSION + 1},>=0.{API_VERSION - 1}\n"),
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: invoicesync-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{info}/entry_points.txt": f"[invoicesync.targets]\nacmevault = {module}.plugin\n",
    }
    records = []
    for path, text in files.items():
        data = text.encode()
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        records.append(f"{path},sha256={digest},{len(data)}")
    records.append(f"{info}/RECORD,,")
    wheel = folder / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
        archive.writestr(f"{info}/RECORD", "\n".join(records) + "\n")
    return wheel


def fresh_environment(folder: Path, *, with_pip: bool, unshared: tuple[str, ...] = ("pip",)) -> Path:
    """A new venv (by ``venv``, or by uv, which adds no pip) sharing this one's packages but ``unshared``."""
    if with_pip:
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    else:
        subprocess.run([uv_binary(), "venv", "--quiet", "--python", sys.executable, str(folder)], check=True)
    python = folder / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               check=True, capture_output=True, text=True).stdout.strip())
    present = {entry.name for entry in site.iterdir()}
    for entry in Path(sysconfig.get_path("purelib")).iterdir():
        if entry.name in present or entry.name in unshared or entry.name.startswith(tuple(f"{n}-" for n in unshared)):
            continue
        if entry.name.endswith(".dist-info"):  # uv does not follow symlinked metadata: copy it (small)
            shutil.copytree(entry, site / entry.name)
        else:
            (site / entry.name).symlink_to(entry)
    return python


def uv_binary() -> str:
    from uv import find_uv_bin  # the dev extras install uv; the test must not silently skip without it

    return str(find_uv_bin())


def invoicesync(python: Path, *args: str, path: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": path, "INVOICESYNC_HOME": str(python.parent.parent / "home")}
    return subprocess.run([python, "-m", "invoicesync", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def installed_plugins(python: Path) -> dict[str, object]:
    listing = invoicesync(python, "plugins", "--json", path=os.environ["PATH"])
    assert listing.returncode == 0, listing.stderr
    return dict(json.loads(listing.stdout))


@pytest.mark.slow
def test_plugins_install_puts_a_local_wheel_into_a_fresh_venv_with_pip(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    build_wheel(wheels)
    python = fresh_environment(tmp_path / "venv", with_pip=True)
    assert "acmevault" not in [p["name"] for p in installed_plugins(python)["plugins"]]  # type: ignore[index]
    result = invoicesync(python, "plugins", "install", "acmevault", "--find-links", str(wheels), "--no-index",
                         path=os.environ["PATH"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{python} -m pip install --find-links {wheels} --no-index" in result.stderr
    found = installed_plugins(python)
    acme = [p for p in found["plugins"] if p["name"] == "acmevault"]  # type: ignore[index,union-attr]
    assert [(p["distribution"], p["version"]) for p in acme] == [("invoicesync-acmevault", "1.0.0")]
    assert found["failures"] == []


@pytest.mark.slow
def test_plugins_install_uses_uv_in_an_environment_uv_made_without_pip(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    build_wheel(wheels)
    python = fresh_environment(tmp_path / "venv", with_pip=False)
    uv_dir = str(Path(uv_binary()).parent)
    result = invoicesync(python, "plugins", "install", "invoicesync-acmevault", "-f", str(wheels), "--no-index",
                         path=f"{uv_dir}{os.pathsep}/usr/bin:/bin")
    assert result.returncode == 0, result.stdout + result.stderr
    assert " pip install --python " in result.stderr
    assert "acmevault" in [p["name"] for p in installed_plugins(python)["plugins"]]  # type: ignore[index]


@pytest.mark.slow
def test_without_pip_or_uv_plugins_install_says_what_to_do(tmp_path: Path) -> None:
    python = fresh_environment(tmp_path / "venv", with_pip=False, unshared=("pip", "uv"))  # no installer at all
    result = invoicesync(python, "plugins", "install", "billit", path="/usr/bin:/bin")
    assert result.returncode == 2
    assert "has no pip, and uv is not on PATH" in result.stderr
    assert f"uv pip install --python {python}" in result.stderr
    assert "Traceback" not in result.stderr


def test_index_options_are_passed_to_pip_and_core_stays_at_this_version(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(subprocess, "call", lambda command: calls.append(command) or 0)
    result = CliRunner().invoke(cli, ["plugins", "install", "billit", "acme-invoicesync-foo", "-U", "--pre",
                                      "-f", "./wheels", "--find-links", "https://example.org/links",
                                      "-i", "https://pypi.example.org/simple",
                                      "--extra-index-url", "https://extra.example.org/simple"])
    assert result.exit_code == 0, result.output
    assert calls == [[sys.executable, "-m", "pip", "install", "--find-links", "./wheels",
                      "--find-links", "https://example.org/links", "--index-url", "https://pypi.example.org/simple",
                      "--extra-index-url", "https://extra.example.org/simple", "--pre", "--upgrade",
                      "invoicesync-billit", "acme-invoicesync-foo", f"invoicesync=={__version__}"]]
