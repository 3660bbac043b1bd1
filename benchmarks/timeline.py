"""Where the wall time of one ``invoicesync sync`` goes: start-up, requests in flight, tail.

    python benchmarks/timeline.py [--orders 500] [--latency-ms 25] [--step 0.25] [--json]
    python benchmarks/timeline.py --wrap "py-spy record --gil -f raw -o prof.txt --"

Starts the Billit and Dropbox sandboxes as ``compare.py`` does (own processes, the latency per
request, at most 8 in flight per credential), runs one sync and reads each sandbox's request log
(every request carries when it arrived and was answered). Prints the three phases of the run (process
start to the first request, first request to the last answer, last answer to the process's exit)
and, per service, the mean requests in flight and their count in each ``--step`` of the run: a run
within reach of the lower bound keeps Billit near 8 from start to end.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from compare import CAP, compile_sources, connect_accounts, measure, sandbox


def occupancy(log: list[dict[str, Any]], start: float, end: float, step: float) -> list[float]:
    """Requests in flight, averaged over each ``step`` seconds from ``start`` to ``end``."""
    buckets = []
    at = start
    while at < end:
        busy = sum(max(0.0, min(r["ended"], at + step) - max(r["started"], at)) for r in log)
        buckets.append(round(busy / step, 1))
        at += step
    return buckets


def one(orders: int, latency: float, step: float, wrap: list[str], work: Path) -> dict[str, Any]:
    compile_sources()
    with sandbox("billit", orders // 2, latency, work / "billit") as billit, \
            sandbox("dropbox", 0, latency, work / "dropbox") as dropbox:
        env = connect_accounts(billit, dropbox, work / "home")
        begun = time.time()
        run = measure([*(wrap or [sys.executable]), "-m", "invoicesync", "--home", str(work / "home"), "sync"], env)
        ended = begun + run.wall
        logs = {box.plugin: [r for r in box.requests() if r["started"] >= begun
                             and not r["path"].startswith("/__sandbox__/")] for box in (billit, dropbox)}
    if run.exit_code:
        raise RuntimeError(f"the sync failed ({run.exit_code}):\n{run.output[-2000:]}")
    first = min(r["started"] for log in logs.values() for r in log)
    last = max(r["ended"] for log in logs.values() for r in log)
    services = {}
    for name, log in logs.items():
        span = max(r["ended"] for r in log) - min(r["started"] for r in log)
        services[name] = {
            "requests": len(log), "throttled_429": sum(r["status"] == 429 for r in log),
            "first_s": round(min(r["started"] for r in log) - begun, 2),
            "last_s": round(max(r["ended"] for r in log) - begun, 2),
            "mean_in_flight": round(sum(r["ended"] - r["started"] for r in log) / span, 2) if span else 0.0,
            "in_flight": occupancy(log, begun, ended, step)}
    return {"orders": orders, "latency_ms": round(latency * 1000), "wall_s": round(run.wall, 2),
            "cpu_s": round(run.cpu, 2), "start_up_s": round(first - begun, 2),
            "requests_s": round(last - first, 2), "tail_s": round(ended - last, 2), "services": services}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=500)
    parser.add_argument("--latency-ms", type=float, default=25.0)
    parser.add_argument("--step", type=float, default=0.25, help="seconds per in-flight bucket")
    parser.add_argument("--wrap", default="", help="a command to run the sync's python under (a profiler)")
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="invoicesync-timeline-") as tmp:
        result = one(options.orders, options.latency_ms / 1000, options.step,
                     [*shlex.split(options.wrap), sys.executable] if options.wrap else [], Path(tmp))
    if options.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{result['orders']} orders at {result['latency_ms']} ms: wall {result['wall_s']} s, "
          f"CPU {result['cpu_s']} s; start-up {result['start_up_s']} s, "
          f"requests {result['requests_s']} s, tail {result['tail_s']} s")
    for name, service in result["services"].items():
        print(f"{name}: {service['requests']} requests ({service['throttled_429']} 429), from "
              f"{service['first_s']} s to {service['last_s']} s, {service['mean_in_flight']} in flight "
              f"on average (cap {CAP})")
        print(f"  per {options.step} s: {' '.join(str(x) for x in service['in_flight'])}")


if __name__ == "__main__":
    main()
