"""A sync with nothing to do starts fast: loading the plugins it runs imports no token library or
emulator they do not need yet, and reads no distribution's metadata (``invoicesync plugins`` does)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

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
        from invoicesync.cli import main
        try:
            main(["--home", sys.argv[1], "sync"])
        except SystemExit:
            pass
        print(json.dumps(seen))
    """)
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "home")], capture_output=True, text=True,
                          check=True)
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
