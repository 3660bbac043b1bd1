"""``make dist-check``: build every distribution, check it, and use it the way a pip user would.

1. Build the sdist and, from it, the wheel of core and of each plugin (``python -m build``);
   also build each wheel with the oldest setuptools the build requirement admits.
2. ``twine check --strict`` every file.
3. Into fresh venvs, from the built files (our own distributions pinned ``==VERSION`` with
   ``--find-links``; third-party ones from the index, all venvs sharing pip's cache), install core
   with each plugin alone, and ``invoicesync[all]``. In each: ``invoicesync plugins --json`` lists
   the plugin with no load failures, ``invoicesync sandbox NAME`` serves (started, probed over HTTP,
   stopped), and where a source is installed, ``invoicesync demo`` exits 0 with documents in every target.

Usage: python tools/dist_check.py [--keep] (work folder: build/dist-check).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tomllib
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "build" / "dist-check"
DIST = WORK / "dist"
PROJECTS = {"invoicesync": ROOT / "core", **{f"invoicesync-{p.name}": p for p in sorted((ROOT / "plugins").iterdir())
                                                if (p / "pyproject.toml").exists()}}
SOURCES = {"billit"}  # plugins that can feed the demo


class CheckFailed(Exception):
    pass


@dataclass
class Scenario:
    name: str
    requirements: list[str]
    plugins: set[str]  # what `invoicesync plugins --json` must list (besides localfs)


def run(command: list[str | Path], *, env: dict[str, str] | None = None, timeout: float = 600,
        cwd: Path | None = None) -> str:
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, env=env, timeout=timeout,
                            cwd=cwd, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise CheckFailed(f"`{' '.join(map(str, command))}` exited {result.returncode}:\n"
                          f"{result.stdout[-4000:]}{result.stderr[-4000:]}")
    return result.stdout


def version_of(project: Path) -> str:
    return str(tomllib.loads((project / "pyproject.toml").read_text())["project"]["version"])


def build_all() -> None:
    shutil.rmtree(DIST, ignore_errors=True)
    for name, project in PROJECTS.items():
        # sdist first, then the wheel built from that sdist: a file missing from the sdist fails here
        run([sys.executable, "-m", "build", "--outdir", DIST, project])
        print(f"built {name}", flush=True)
    run([sys.executable, "-m", "twine", "check", "--strict", *sorted(DIST.iterdir())])
    print("twine check: passed", flush=True)


def build_with_setuptools_floor() -> None:
    """The build requirement's floor must build: a pip with an older setuptools cached would use it."""
    floors = {str(tomllib.loads((p / "pyproject.toml").read_text())["build-system"]["requires"][0])
              for p in PROJECTS.values()}
    if len(floors) != 1 or not (match := re.fullmatch(r"setuptools>=(\d+)", floors.pop())):
        raise CheckFailed(f"every distribution should require one setuptools floor, not {floors}")
    venv = fresh_venv("setuptools-floor")
    run([venv / "bin" / "python", "-m", "pip", "install", "--quiet", f"setuptools=={match.group(1)}.*"])
    out = WORK / "floor-wheels"
    # From the sdists (built in a temporary folder, as pip does): building in the checkout would leave
    # setuptools' build/ folders in it. The template's projects live in WORK, so in place is fine.
    for source in [*sorted(DIST.glob("*.tar.gz")), *render_template()]:
        run([venv / "bin" / "python", "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
             "--wheel-dir", out, source])
    run([sys.executable, "-m", "twine", "check", "--strict", *sorted(out.glob("invoicesync_acme_*"))])
    print(f"built every wheel, and the template's, with setuptools {match.group(1)}", flush=True)


def render_template() -> list[Path]:
    """A source and a target plugin from `invoicesync new-plugin`: they must build like ours."""
    folders = []
    for kind in ("source", "target"):
        folder = WORK / f"template-{kind}"
        run([sys.executable, "-m", "invoicesync", "new-plugin", f"acme_{kind}", "--kind", kind, "--dir", folder])
        folders.append(folder)
    return folders


def fresh_venv(name: str) -> Path:
    venv = WORK / f"venv-{name}"
    shutil.rmtree(venv, ignore_errors=True)
    run([sys.executable, "-m", "venv", venv])
    return venv


def install(scenario: Scenario) -> Path:
    venv = fresh_venv(scenario.name)
    run([venv / "bin" / "python", "-m", "pip", "install", "--quiet", "--find-links", DIST, *scenario.requirements])
    return venv


def environment(venv: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INVOICESYNC_", "VIRTUAL_ENV", "PYTHON"))}
    return {**env, "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", "INVOICESYNC_HOME": str(home),
            "INVOICESYNC_SECRETS": "file"}


def check_listing(venv: Path, scenario: Scenario, env: dict[str, str]) -> None:
    listing = json.loads(run([venv / "bin" / "invoicesync", "plugins", "--json"], env=env))
    names = {p["name"] for p in listing["plugins"]}
    if listing["failures"] or names != scenario.plugins | {"localfs"}:
        raise CheckFailed(f"[{scenario.name}] plugins --json: {names}, failures {listing['failures']}")


def check_sandbox(venv: Path, plugin: str, env: dict[str, str]) -> None:
    """Start ``invoicesync sandbox PLUGIN``, read its URL, ask it over HTTP(S), stop it with Ctrl-C."""
    process = subprocess.Popen([str(venv / "bin" / "invoicesync"), "sandbox", plugin, "--documents", "3"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               stdin=subprocess.DEVNULL)
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        text = "".join(lines)
        url = re.search(r"sandbox on (\S+)", text)
        if url is None:
            raise CheckFailed(f"`invoicesync sandbox {plugin}` did not start:\n{text}{process.communicate()[1]}")
        ca = re.search(r"trust this CA: (\S+)", text)
        context = ssl.create_default_context(cafile=ca.group(1)) if ca else None
        with urllib.request.urlopen(f"{url.group(1)}/__sandbox__/requests", timeout=30, context=context) as answer:
            if answer.status != 200:
                raise CheckFailed(f"sandbox {plugin} answered {answer.status}")
    finally:
        process.send_signal(signal.SIGINT)
        try:
            _, errors = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise CheckFailed(f"sandbox {plugin} did not stop on Ctrl-C") from None
    if process.returncode != 0:
        raise CheckFailed(f"sandbox {plugin} exited {process.returncode} on Ctrl-C:\n{errors[-4000:]}")


def check_demo(venv: Path, scenario: Scenario, env: dict[str, str], folder: Path) -> None:
    output = run([venv / "bin" / "invoicesync", "demo", "--dir", folder, "--documents", "10"], env=env, cwd=WORK)
    targets = {f"demo-{p}" for p in scenario.plugins - SOURCES} | {"demo-folder"}
    delivered = {m.group(1) for m in re.finditer(r"→ (\S+): (\d+) delivered", output) if int(m.group(2)) > 0}
    if delivered != targets or "skipped " in output.split("Sync finished")[0]:
        raise CheckFailed(f"[{scenario.name}] demo delivered to {sorted(delivered)}, expected {sorted(targets)}:\n"
                          f"{output}")
    if not any((folder / "invoices").rglob("*.pdf")):
        raise CheckFailed(f"[{scenario.name}] demo wrote no PDF into {folder / 'invoices'}")


def check(scenario: Scenario) -> str:
    venv = install(scenario)
    env = environment(venv, WORK / f"home-{scenario.name}")
    check_listing(venv, scenario, env)
    for plugin in sorted(scenario.plugins):
        check_sandbox(venv, plugin, env)
    if scenario.plugins & SOURCES:
        check_demo(venv, scenario, env, WORK / f"demo-{scenario.name}")
    return f"[{scenario.name}] installed, listed, sandboxes served" + (
        ", demo delivered everywhere" if scenario.plugins & SOURCES else "")


def scenarios(version: str) -> list[Scenario]:
    plugins = [name.removeprefix("invoicesync-") for name in PROJECTS if name != "invoicesync"]
    pinned = [f"invoicesync-{p}=={version}" for p in plugins]
    alone = [Scenario(p, [f"invoicesync=={version}", f"invoicesync-{p}=={version}"], {p}) for p in plugins]
    return [*alone, Scenario("all", [f"invoicesync[all]=={version}", *pinned], set(plugins))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep build/dist-check (venvs, demo folders)")
    args = parser.parse_args()
    versions = {name: version_of(project) for name, project in PROJECTS.items()}
    if len(set(versions.values())) != 1:
        print(f"dist-check: the distributions must share one version: {versions}", file=sys.stderr)
        return 1
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    try:
        build_all()
        build_with_setuptools_floor()
        # Two at a time: installs wait on the network and the disk as much as on the CPU.
        with ThreadPoolExecutor(max_workers=2) as pool:
            for line in pool.map(check, scenarios(versions["invoicesync"])):
                print(line, flush=True)
    except CheckFailed as exc:
        print(f"dist-check FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(WORK, ignore_errors=True)
    print("dist-check: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
