"""Billit into every target — each alone and all at once — at growing order counts, then a re-sync.

For each order count and latency: start the Billit sandbox (the orders in 2 companies) and, for
each target set, a fresh sandbox per target, each in its own process, answering every request after
``latency`` seconds with at most 8 requests in flight per credential (429 beyond), as
``compare.py`` does. Connect a fresh home to them and run ``invoicesync sync`` in a child process:
wall time, CPU seconds (the child and its children, from ``wait4``), peak RSS (the child's own
high-water mark, or its children's; see ``PEAK_WRAPPER``) and the requests
each service answered. Then run the same sync again with nothing changed (the *re-sync*): it should
end in under a second at 0 ms, ask Billit at most ``ceil(N/120) + 2`` requests per company (N: orders
changed since the cursor, here 0) and ask no target anything.

The syncs run with Python's bytecode cache on (in a temporary ``PYTHONPYCACHEPREFIX``, even where
``PYTHONDONTWRITEBYTECODE`` is set), as an installed package has it: the first sync compiles,
the re-sync starts from bytecode. ``--no-bytecode`` leaves the environment as it is.

Target sets: ``each`` runs every target alone, ``all`` runs them together. Memory must not grow
with the order count: peak RSS of 500 and 10,000 orders into all four targets within 30%, under
200 MB. Wall times on a shared machine are noisy; RSS is not.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from compare import PAGE, Run, Sandbox, machine, measure, sandbox, service_requests

HERE = Path(__file__).resolve().parent
TARGETS = ("localfs", "dropbox", "gdrive", "dynamics365")
COMPANIES = 2
#: Settings each target needs besides the sandbox's own: Billit's suppliers are not BC vendors yet.
EXTRA_SETTINGS: dict[str, dict[str, Any]] = {"dynamics365": {"create_missing_vendors": True}}


def connect_home(home: Path, billit: Sandbox, targets: dict[str, Sandbox | None], *,
                 bytecode: bool = False) -> dict[str, str]:
    """A fresh home with the Billit account and one account per target; the environment to run it with."""
    import os

    from invoicesync.accounts import connect
    from invoicesync.context import NonInteractiveUI
    from invoicesync.workspace import Workspace

    env = {"INVOICESYNC_SECRETS": "file", "INVOICESYNC_HOME": str(home)}
    os.environ.update(env)
    if bytecode:  # for the syncs only (an empty value is "not set")
        env.update(PYTHONDONTWRITEBYTECODE="", PYTHONPYCACHEPREFIX=str(home.parent / "pycache"))
    with Workspace.open(home) as workspace:
        for name, box in [("billit", billit), *targets.items()]:
            if box is None:  # localfs: a folder beside the home
                connect(workspace, name, ui=NonInteractiveUI(), name=name, settings={"root": str(home.parent / "out")})
                continue
            for key, value in box.secrets.items():
                workspace.secrets(name).set(key, value)
            connect(workspace, box.plugin, ui=NonInteractiveUI(), name=name,
                    settings={**box.settings, **EXTRA_SETTINGS.get(name, {})}, companies=("*",))
    return env


#: Runs the CLI, then writes the process's own peak RSS (VmHWM, or a child's if larger) to a file.
#: ``wait4``'s ``ru_maxrss`` will not do: Linux carries the spawning process's peak across ``exec``
#: into the child's, so a child of this (large) benchmark process reads at least the benchmark's size.
PEAK_WRAPPER = """
import atexit, os, resource, runpy, sys
def report():
    own = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    with open(os.environ["BENCH_PEAK_FILE"], "w") as out:
        out.write(str(max(own, children)))
atexit.register(report)
if os.environ.get("BENCH_RSS_PARTS"):  # --rss-parts: the peaks of RSS's parts (anonymous, file, shared)
    import json, threading, time
    _peaks = {}
    def _sample():
        while True:
            for line in open("/proc/self/status"):
                if line.startswith(("RssAnon:", "RssFile:", "RssShmem:", "VmRSS:", "Threads:")):
                    key, value = line.split(":")
                    _peaks[key] = max(_peaks.get(key, 0), int(value.split()[0]))
            time.sleep(0.2)
    threading.Thread(target=_sample, daemon=True).start()
    atexit.register(lambda: open(os.environ["BENCH_RSS_PARTS"], "a").write(json.dumps(_peaks) + "\\n"))
if os.environ.get("BENCH_GC_EVERY"):  # an experiment: a full garbage collection every N seconds
    import gc, threading, time
    def _collect():
        while True:
            time.sleep(float(os.environ["BENCH_GC_EVERY"]))
            gc.collect()
    threading.Thread(target=_collect, daemon=True).start()
if os.environ.get("BENCH_GC_CENSUS"):  # an experiment: what the run leaves in reference cycles, by type
    import collections, gc, json
    from invoicesync.pipeline import _export as _census_export
    gc.disable()
    _census_close = _census_export.TargetWorkers.close
    def _close_and_count(self):
        _census_close(self)
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        counts = collections.Counter(type(o).__module__ + "." + type(o).__qualname__ for o in gc.garbage)
        gc.garbage.clear()
        gc.set_debug(0)
        with open(os.environ["BENCH_GC_CENSUS"], "a") as out:
            out.write(json.dumps(dict(counts.most_common(25))) + "\\n")
    _census_export.TargetWorkers.close = _close_and_count
if os.environ.get("BENCH_BUDGET_SCALE"):  # --budget-scale: a larger request budget (benchmark only)
    from invoicesync import workspace as _ws
    _scale, _new_budget = float(os.environ["BENCH_BUDGET_SCALE"]), _ws.Workspace._new_budget
    def _scaled(self, account, info, settings=None):
        if info.budget_requests:
            info = info.model_copy(update={"budget_requests": int(info.budget_requests * _scale)})
        return _new_budget(self, account, info, settings)
    _ws.Workspace._new_budget = _scaled
if os.environ.get("BENCH_TRACEMALLOC"):  # --tracemalloc: what the run holds once every target is done
    import tracemalloc
    from invoicesync.pipeline import _export
    tracemalloc.start(int(os.environ.get("BENCH_TRACEMALLOC_FRAMES", "8")))
    _close = _export.TargetWorkers.close
    def _close_and_snapshot(self):
        _close(self)  # after each target's close; the last one written is after every target's
        tracemalloc.take_snapshot().dump(os.environ["BENCH_TRACEMALLOC"])
    _export.TargetWorkers.close = _close_and_snapshot
sys.argv = ["invoicesync", *sys.argv[1:]]
runpy.run_module("invoicesync", run_name="__main__", alter_sys=True)
"""


def sync(home: Path, env: dict[str, str]) -> Run:
    peak_file = home.parent / "peak-kib"
    run = measure([sys.executable, "-c", PEAK_WRAPPER, "--home", str(home), "sync"],
                  {**env, **_extra_env, "BENCH_PEAK_FILE": str(peak_file)})
    if run.exit_code:
        raise RuntimeError(f"invoicesync sync exited {run.exit_code}:\n{run.output[-3000:]}")
    run.max_rss_mib = int(peak_file.read_text()) / 1024
    return run


def one_set(orders: int, latency: float, billit: Sandbox, names: list[str], work: Path,
            bytecode: bool) -> dict[str, Any]:
    with ExitStack() as stack:
        boxes: dict[str, Sandbox | None] = {
            name: None if name == "localfs" else stack.enter_context(sandbox(name, 0, latency, work / name))
            for name in names}
        home = work / "home"
        env = connect_home(home, billit, boxes, bytecode=bytecode)
        every = {"billit": billit, **{n: b for n, b in boxes.items() if b is not None}}
        rows = {}
        for phase in ("sync", "resync"):
            if _trace_dir is not None:
                _extra_env["BENCH_TRACEMALLOC"] = str(_trace_dir / f"{orders}-{'+'.join(names)}-{phase}.snapshot")
            before = {n: len(b.requests()) for n, b in every.items()}
            run = sync(home, env)
            counted = {n: service_requests(b, before[n]) for n, b in every.items()}
            rows[phase] = {"wall_s": round(run.wall, 2), "cpu_s": round(run.cpu, 2),
                           "max_rss_mib": round(run.max_rss_mib, 1),
                           "requests": {n: c for n, (c, _) in counted.items()},
                           "throttled_429": sum(t for _, t in counted.values())}
    # Nothing changed since the cursor: N = 0, so ceil(0/120) + 2 per company.
    allowed = COMPANIES * (math.ceil(0 / PAGE) + 2)
    resync = rows["resync"]
    resync["billit_ok"] = resync["requests"]["billit"] <= allowed
    resync["targets_ok"] = all(c == 0 for n, c in resync["requests"].items() if n != "billit")
    return {"orders": orders, "latency_ms": round(latency * 1000), "targets": "+".join(names), **rows}


#: Set by ``main`` from ``--budget-scale`` and ``--tracemalloc``: what each sync's environment adds.
_extra_env: dict[str, str] = {}
_trace_dir: Path | None = None


def run_all(sizes: list[int], latencies: list[float], sets: list[list[str]],
            bytecode: bool = True) -> list[dict[str, Any]]:
    results = []
    for orders in sizes:
        for latency in latencies:
            with tempfile.TemporaryDirectory(prefix="invoicesync-all-targets-") as tmp, \
                    sandbox("billit", orders // COMPANIES, latency, Path(tmp) / "billit") as billit:
                for index, names in enumerate(sets):
                    result = one_set(orders, latency, billit, names, Path(tmp) / f"set{index}", bytecode)
                    print(json.dumps(result), file=sys.stderr, flush=True)  # progress for long runs
                    results.append(result)
    return results


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| orders | latency | targets | wall s | CPU s | peak RSS MiB | requests (billit / targets) | 429s "
             "| re-sync wall s | re-sync CPU s | re-sync RSS MiB | re-sync requests (billit / targets) |",
             "|" + "---|" * 12]
    for r in results:
        s, re_ = r["sync"], r["resync"]
        flag = "" if re_["billit_ok"] and re_["targets_ok"] else " (TOO MANY)"
        lines.append(
            f"| {r['orders']} | {r['latency_ms']} ms | {r['targets']} | {s['wall_s']} | {s['cpu_s']} | "
            f"{s['max_rss_mib']} | {_requests(s)} | {s['throttled_429']} | {re_['wall_s']} | {re_['cpu_s']} | "
            f"{re_['max_rss_mib']} | {_requests(re_)}{flag} |")
    return "\n".join(lines)


def _requests(row: dict[str, Any]) -> str:
    counts = row["requests"]
    return f"{counts['billit']} / " + ", ".join(f"{n} {c}" for n, c in counts.items() if n != "billit") \
        if len(counts) > 1 else f"{counts['billit']} / -"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", default="500,2000", help="order counts (2 companies), comma-separated; "
                        "the issue's set is 500,2000,10000")
    parser.add_argument("--latency-ms", default="0,25", help="latencies per request, comma-separated")
    parser.add_argument("--targets", default=",".join(TARGETS), help="targets, comma-separated")
    parser.add_argument("--sets", default="each,all", help="each: every target alone; all: all together")
    parser.add_argument("--no-bytecode", action="store_true", help="leave PYTHONDONTWRITEBYTECODE as it is")
    parser.add_argument("--budget-scale", type=float, help="multiply every plugin's request budget (e.g. 10 "
                        "for BC's 6,000 per 5 min at 10,000 orders); say so in the note: it changes wall times")
    parser.add_argument("--tracemalloc", metavar="DIR", help="trace allocations (slow) and dump a snapshot per "
                        "sync to DIR once every target is done, for `python -m tracemalloc`-style diffs")
    parser.add_argument("--rss-parts", metavar="FILE", help="append each sync's peak RssAnon/RssFile/RssShmem "
                        "(KiB, sampled every 0.2 s) to FILE as a JSON line")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--no-write", action="store_true", help="do not append to benchmarks/RESULTS.md")
    parser.add_argument("--note", default="", help="a line to keep with the results (e.g. what else ran)")
    parser.add_argument("--label", help="what code ran (default: this checkout's commit)")
    args = parser.parse_args()
    targets = [t for t in args.targets.split(",") if t]
    unknown = set(targets) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets {sorted(unknown)}; known: {', '.join(TARGETS)}")
    sets: list[list[str]] = []
    for kind in args.sets.split(","):
        sets += [[t] for t in targets] if kind == "each" else [targets] if kind == "all" else []
    global _trace_dir
    if args.budget_scale:
        _extra_env["BENCH_BUDGET_SCALE"] = str(args.budget_scale)
    if args.rss_parts:
        _extra_env["BENCH_RSS_PARTS"] = str(Path(args.rss_parts).resolve())
    if args.tracemalloc:
        _trace_dir = Path(args.tracemalloc).resolve()
        _trace_dir.mkdir(parents=True, exist_ok=True)
    started = machine()
    results = run_all([int(x) for x in args.orders.split(",")], [float(x) / 1000 for x in args.latency_ms.split(",")],
                      sets, bytecode=not args.no_bytecode)
    print(json.dumps(results, indent=2) if args.json else table(results))
    if not args.no_write:
        command = "python benchmarks/all_targets.py " + " ".join(sys.argv[1:])
        label = args.label or "commit " + subprocess.run(
            ["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        with open(HERE / "RESULTS.md", "a") as out:
            out.write(f"\n## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, all targets, {label}\n\n"
                      f"Machine: {started}.  \nCommand: `{command}`\n"
                      + (f"\n{args.note}\n" if args.note else "") + f"\n{table(results)}\n")


if __name__ == "__main__":
    main()
