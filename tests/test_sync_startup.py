"""A sync with nothing to do starts fast: loading the plugins it runs imports no token library or
emulator they do not need yet, and reads no distribution's metadata (``invoicesync plugins`` does)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

#: Imported on first use only: msal on BC's first token, jwt when a Drive service account signs,
#: the emulators when a sandbox is asked for.
NOT_AT_LOAD = ("msal", "requests", "jwt", "invoicesync_gdrive.sandbox", "invoicesync_dynamics365.sandbox",
               "invoicesync_dropbox.sandbox", "invoicesync_billit.sandbox")


def test_loading_every_plugin_for_a_sync_imports_no_token_library_or_emulator() -> None:
    script = textwrap.dedent("""
        import json, sys
        from importlib import metadata

        def refuse(*args, **kwargs):
            raise AssertionError("packages_distributions() read at plugin load")

        metadata.packages_distributions = refuse
        from invoicesync.plugins import Plugins
        plugins = Plugins.discover(lazy=True)
        infos = {name: plugins.get(name).info.kind.value
                 for name in ("billit", "localfs", "dropbox", "gdrive", "dynamics365")}
        print(json.dumps({"infos": infos, "modules": sorted(sys.modules)}))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    result = json.loads(done.stdout)
    assert result["infos"]["gdrive"] == "target" and result["infos"]["billit"] == "source"
    assert not [m for m in result["modules"] if m.split(".")[0] in NOT_AT_LOAD or m in NOT_AT_LOAD]


def test_a_plugins_distribution_is_still_named_when_asked() -> None:
    from invoicesync.plugins import Plugins

    plugins = Plugins.discover(lazy=True)
    assert plugins.get("dynamics365").distribution == "invoicesync-dynamics365"
    assert plugins.get("dynamics365").version


def test_a_sync_process_freezes_what_start_up_built_and_collects_young_objects_less_often(tmp_path: Path) -> None:
    # `invoicesync sync` run as its own process (main()) tunes the collector for its one run...
    script = textwrap.dedent("""
        import gc, json, sys
        import invoicesync.cli._sync as sync_command
        seen = {}
        def run_sync(*args, **kwargs):
            seen.update(frozen=gc.get_freeze_count(), young=gc.get_threshold()[0])
            raise SystemExit(0)
        sync_command.run_sync = run_sync
    """)
    done = _sync_in_a_child(script, tmp_path / "home")
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["frozen"] > 10_000 and seen["young"] >= 10_000


def test_a_sync_inside_another_process_leaves_its_collector_alone(tmp_path: Path) -> None:
    # ...but a sync invoked in a longer-lived process (a test's CliRunner, an embedding) does not.
    import gc

    from click.testing import CliRunner
    from invoicesync.cli import cli

    before = gc.get_threshold(), gc.get_freeze_count()
    CliRunner().invoke(cli, ["--home", str(tmp_path / "home"), "sync"])
    assert (gc.get_threshold(), gc.get_freeze_count()) == before


#: Never imported by a sync without a terminal (cron, a script, ``--json``): rich draws progress bars
#: on a terminal only, and httpx's own command line (``httpx._main``: rich, pygments) never runs.
NOT_IN_A_SYNC = ("rich", "pygments", "httpx._main")


def test_a_sync_without_a_terminal_imports_neither_rich_nor_httpxs_command_line(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import json, sys
        from invoicesync.cli import main
        try:
            main(["--home", sys.argv[1], "sync"])  # no accounts: it stops early, but as a sync does
        except SystemExit:
            pass
        from invoicesync.plugins import Plugins
        plugins = Plugins.discover(lazy=True)
        for name in ("billit", "dropbox"):
            plugins.get(name)
        import invoicesync.pipeline, invoicesync_billit.documents, invoicesync_dropbox.stream
        print(json.dumps(sorted(name for name, module in sys.modules.items() if module is not None)))
    """)
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "home")], capture_output=True, text=True,
                          check=True)
    modules = json.loads(done.stdout.strip().splitlines()[-1])
    assert "httpx" in modules and "invoicesync_billit.plugin" in modules
    assert not [m for m in modules if m.split(".")[0] in NOT_IN_A_SYNC or m in NOT_IN_A_SYNC]


def test_an_embedding_that_imported_httpx_first_keeps_its_command_line() -> None:
    script = textwrap.dedent("""
        import sys
        import httpx
        from invoicesync.cli import without_httpx_command_line
        without_httpx_command_line()
        import httpx._main
        print(httpx.main is httpx._main.main)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "True"


def test_discovering_the_plugins_reads_the_installed_entry_points_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib import metadata

    from invoicesync.plugins import GROUPS, Plugins

    reads = []
    real = metadata.entry_points

    def entry_points(**params: Any) -> Any:
        reads.append(params)
        return real(**params)

    monkeypatch.setattr(metadata, "entry_points", entry_points)
    plugins = Plugins.discover(lazy=True)
    assert len(reads) == 1 and len(GROUPS) > 1
    assert plugins.get("billit").info.kind.value == "source" and plugins.get("dropbox").info.kind.value == "target"


#: A sync (``python -m invoicesync ... sync``, as the ``invoicesync`` command runs it) imports none of
#: these: the eager plugin loader (stevedore), the login's local server (``http.server``) and the
#: platform's folders (the home is given).
NOT_IMPORTED_BY_A_SYNC = ("stevedore", "http.server", "platformdirs", "invoicesync.http._listener")

#: Run as the benchmarks and a pip user's ``python -m invoicesync`` do: an ``atexit`` handler and an
#: object freed only by the interpreter's teardown say which of the two ran.
EXIT_PROBE = textwrap.dedent("""
    import atexit, json, os, runpy, sys, threading

    class FreedAtTeardown:
        def __del__(self, write=os.write):  # bound now: the teardown may have cleared ``os`` by then
            write(1, b"teardown\\n")

    # Held by a module of its own, in no reference cycle: the teardown frees it when it empties
    # sys.modules (the sync freezes what start-up built, so a cycle could outlive the teardown).
    holder = type(sys)("teardown_probe")
    holder.kept = FreedAtTeardown()
    sys.modules["teardown_probe"] = holder
    del holder
    atexit.register(lambda: os.write(1, b"atexit ran\\n"))
    if sys.argv[2] == "busy":  # a non-daemon thread still alive when the command ends
        gate = threading.Event()
        import invoicesync.cli as cli
        exit_without_teardown = cli.exit_without_teardown
        def exit_after_release(code):
            exit_without_teardown(code)  # must return: the thread is alive
            gate.set()
        cli.exit_without_teardown = exit_after_release
        threading.Thread(target=gate.wait).start()
    if sys.argv[2] == "modules":  # and what running Billit into Dropbox adds (no sandbox needed)
        def loaded():
            from invoicesync.plugins import Plugins
            plugins = Plugins.discover(lazy=True)
            for name in ("billit", "dropbox"):
                plugins.get(name)
            import invoicesync_billit.documents, invoicesync_dropbox.stream
            os.write(1, (json.dumps(sorted(n for n, m in sys.modules.items() if m)) + "\\n").encode())
        atexit.register(loaded)
    sys.argv = ["invoicesync", "--home", sys.argv[1], "sync"]
    runpy.run_module("invoicesync", run_name="__main__", alter_sys=True)
""")


def _sync_process(home: Path, mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", EXIT_PROBE, str(home), mode], capture_output=True, text=True,
                          env={**os.environ, "INVOICESYNC_SECRETS": "file"})


def test_a_sync_process_ends_without_the_interpreters_teardown_but_runs_atexit_and_flushes(tmp_path: Path) -> None:
    done = _sync_process(tmp_path / "home", "plain")  # no accounts: a fatal run, exit code 2
    lines = done.stdout.splitlines()
    assert done.returncode == 2, done.stderr
    assert "fatal: no accounts to sync; add one with `invoicesync connect PLUGIN`" in done.stdout  # flushed
    assert "atexit ran" in lines and "teardown" not in lines
    assert lines[-1] == "atexit ran"  # the summary printed before it, nothing after


def test_a_sync_process_with_a_live_thread_exits_the_usual_way(tmp_path: Path) -> None:
    done = _sync_process(tmp_path / "home", "busy")
    lines = done.stdout.splitlines()
    assert done.returncode == 2, done.stderr
    assert "atexit ran" in lines and "teardown" in lines


def test_a_sync_process_imports_no_login_server_eager_loader_or_platform_folders(tmp_path: Path) -> None:
    home = tmp_path / "home"
    subprocess.run([sys.executable, "-m", "invoicesync", "--home", str(home), "connect", "localfs",
                    "--name", "out", "--set", f"root={tmp_path / 'out'}"], capture_output=True, text=True,
                   env={**os.environ, "INVOICESYNC_SECRETS": "file"})
    done = _sync_process(home, "modules")
    modules = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("[")))
    assert "invoicesync.pipeline" in modules and "invoicesync.http._authorize" in modules
    assert not [m for m in modules if m.split(".")[0] in NOT_IMPORTED_BY_A_SYNC or m in NOT_IMPORTED_BY_A_SYNC]


def test_a_profiled_sync_still_writes_its_profile(tmp_path: Path) -> None:
    # cProfile writes its report after the command returns: a profiled run keeps the usual exit.
    profile = tmp_path / "sync.prof"
    done = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "invoicesync", "--home",
                           str(tmp_path / "home"), "sync"], capture_output=True, text=True,
                          env={**os.environ, "INVOICESYNC_SECRETS": "file"})
    assert "fatal: no accounts to sync" in done.stdout, done.stderr  # (cProfile itself exits 0)
    assert profile.exists() and profile.stat().st_size > 0


def test_a_sync_process_collects_young_objects_less_often_from_its_imports_on(tmp_path: Path) -> None:
    # The threshold is raised before the sync command imports the pipeline, not once the home is open.
    script = textwrap.dedent("""
        import gc, json, sys
        seen = {}
        class Watch:
            def find_spec(self, name, path=None, target=None):
                if name == "invoicesync.pipeline":
                    seen["young"] = gc.get_threshold()[0]
                return None
        sys.meta_path.insert(0, Watch())
    """)
    done = _sync_in_a_child(script, tmp_path / "home")
    assert json.loads(done.stdout.strip().splitlines()[-1])["young"] >= 10_000


def _sync_in_a_child(script: str, home: Path) -> subprocess.CompletedProcess[str]:
    """Run ``script`` (which fills a dict ``seen``) then ``main(["--home", home, "sync"])`` in a fresh
    interpreter, as the ``invoicesync`` command would; ``seen`` is printed as JSON, last."""
    script += textwrap.dedent("""
        from invoicesync.cli import main
        try:
            main(["--home", sys.argv[1], "sync"])
        except SystemExit:
            pass
        print(json.dumps(seen))
    """)
    return subprocess.run([sys.executable, "-c", script, str(home)], capture_output=True, text=True, check=True)
