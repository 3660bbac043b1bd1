"""Sync N documents from the Billit sandbox into a local folder; report throughput and peak memory.

Each size runs in a fresh interpreter, so peak RSS numbers do not leak from one size to the next.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path


def one(documents: int, trace: bool) -> dict[str, float | None]:
    from invoicesync.accounts import connect
    from invoicesync.context import NonInteractiveUI
    from invoicesync.pipeline import run_sync
    from invoicesync.workspace import Workspace

    with tempfile.TemporaryDirectory() as tmp, _sandbox_process("billit", documents, Path(tmp)) as url:
        workspace = Workspace.open(Path(tmp) / "home")
        # The same sandbox class, unseeded, only to learn its demo account's settings and secrets.
        app = workspace.plugins.call("billit", "sandbox", options={"documents": 0, "seed": 7})
        for key, value in app.account_secrets().items():
            workspace.secrets("bench").set(key, value)
        connect(workspace, "billit", ui=NonInteractiveUI(), name="bench",
                settings=app.account_settings(url), companies=("*",))
        connect(workspace, "localfs", ui=NonInteractiveUI(), name="folder",
                settings={"root": str(Path(tmp) / "out")})
        rss_before = _rss_mib()
        if trace:
            tracemalloc.start()
        started = time.perf_counter()
        report = run_sync(workspace)
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] if trace else 0
        tracemalloc.stop()
        workspace.close()
    imported = sum(report.imported.values())
    return {
        "documents": imported,
        "seconds": round(seconds, 2),
        "docs_per_second": round(imported / seconds, 1),
        "traced_peak_mib": round(peak / 2**20, 1) if trace else None,
        "rss_growth_mib": round(_rss_mib() - rss_before, 1),
        "max_rss_mib": round(_rss_mib(), 1),
        "exit_code": report.exit_code,
    }


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextlib.contextmanager
def _sandbox_process(plugin: str, documents: int, home: Path) -> Iterator[str]:
    """Run the sandbox in its own process, so its data does not count against the runner's memory."""
    command = [sys.executable, "-m", "invoicesync", "--home", str(home / "sandbox-home"), "sandbox", plugin,
               "--documents", str(documents), "--seed", "7"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        url = first.split(" on ")[-1].strip()
        if not url.startswith("http"):
            raise RuntimeError(f"sandbox did not start: {first!r}")
        yield url
    finally:
        process.terminate()
        process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100,400,1600", help="documents per sandbox company, comma-separated")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--trace", action="store_true",
                        help="also trace Python allocations (tracemalloc; slows the run 2-3x)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(one(args.one, args.trace)))
        return
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        command = [sys.executable, __file__, "--one", str(size), *(["--trace"] if args.trace else [])]
        out = subprocess.run(command, check=True, capture_output=True, text=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'documents':>10} {'seconds':>8} {'docs/s':>8} {'traced peak MiB':>16} {'RSS growth MiB':>15} "
          f"{'max RSS MiB':>12}")
    for r in results:
        print(f"{r['documents']:>10} {r['seconds']:>8} {r['docs_per_second']:>8} {r['traced_peak_mib'] or '-':>16} "
              f"{r['rss_growth_mib']:>15} {r['max_rss_mib']:>12}")


if __name__ == "__main__":
    main()
