"""Developer commands: ``sandbox`` (run a service emulator) and ``demo``."""

from __future__ import annotations

import shlex
import shutil
import sys
import threading
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from ..accounts import sandbox_settings
from ..demo import run_demo
from ..sandbox import Fault, serve
from ._common import State, handle_errors, pass_state
from ._sync import print_summary


@click.command()
@click.argument("plugin")
@click.option("--port", type=int, default=0, show_default=True, help="Port on 127.0.0.1 (0: any free port).")
@click.option("--documents", "--orders", "documents", type=int, default=50, show_default=True,
              help="How many documents to seed (sources).")
@click.option("--seed", type=int, default=1, show_default=True, help="Seed for the generated data.")
@click.option("--fault", "faults", multiple=True, metavar="SPEC",
              help="Inject a fault, e.g. 'status:status=429,headers.Retry-After=2,times=3' or 'drop:path=/v1/files'.")
@click.option("--tls/--no-tls", default=None, help="Serve HTTPS with a throw-away CA (default: as the plugin needs).")
@pass_state
@handle_errors
def sandbox(state: State, plugin: str, port: int, documents: int, seed: int, faults: tuple[str, ...],
            tls: bool | None) -> None:
    """Serve a local emulator of PLUGIN's service on loopback, for trying things and for tests.

    Faults can also be added while it runs: POST a JSON rule to /__sandbox__/faults.
    """
    workspace = state.workspace()
    app = workspace.plugins.call(plugin, "sandbox", options={"documents": documents, "seed": seed})
    for spec in faults:
        app.add_fault(Fault.parse(spec))
    use_tls = getattr(app, "tls", False) if tls is None else tls
    running = serve(app, port=port, tls=use_tls, tls_dir=workspace.home / "sandbox-ca" / plugin)
    click.echo(f"{plugin} sandbox on {running.url}")
    if running.ca_file:
        click.echo(f"  trust this CA: {running.ca_file}")
    settings = sandbox_settings(workspace.plugins, plugin, running)
    flags = " ".join(f"--{key.replace('_', '-')} {shlex.quote(str(value))}" for key, value in settings.items())
    click.echo(f"Point an account at it:\n  invoicesync connect {plugin} --name {plugin}-sandbox {flags}")
    click.echo("Press Ctrl-C to stop.")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        running.stop()


def _shown(path: Path) -> str:
    """A path as short as it can be said from here."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _command() -> str:
    """How the user called us (``.venv/bin/invoicesync`` after ``make demo``), to repeat it back."""
    invoked = Path(sys.argv[0]).absolute()
    on_path = shutil.which("invoicesync")
    if invoked.name == "invoicesync" and (on_path is None or Path(on_path).absolute() != invoked):
        return _shown(invoked)
    return "invoicesync"


@click.command()
@click.option("--dir", "folder", type=click.Path(path_type=Path), default=Path("invoicesync-demo"), show_default=True,
              help="Where the demo keeps its home and writes the invoices (recreated each run).")
@click.option("--documents", type=int, default=30, show_default=True, help="Documents per sandbox company.")
@pass_state
@handle_errors
def demo(state: State, folder: Path, documents: int) -> None:
    """Run the whole flow on built-in sandboxes: no accounts needed, nothing to type."""
    click.echo("Starting the sandboxes and connecting demo accounts…", err=True)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        console=Console(stderr=True), disable=not sys.stderr.isatty())
    with progress:
        result = run_demo(folder.resolve(), documents=documents, progress=progress, plugins=state.plugins)
    for name, url in result.sandboxes.items():
        click.echo(f"  sandbox {name}: {url} (stopped now)")
    for name, reason in result.skipped.items():
        click.echo(f"  skipped {name}: {reason}")
    print_summary(result.report)
    click.echo(f"\nThe invoices are in {_shown(result.folder)}")
    click.echo(f"Look around:  {_command()} --home {_shown(result.home)} documents")
    sys.exit(result.report.exit_code)
