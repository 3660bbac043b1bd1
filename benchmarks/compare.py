"""invoicesync against the plain sequential script a user would write, on the same sandboxes.

For each latency: start the Billit sandbox (N orders in 2 companies) and a Dropbox sandbox, each in
its own process, answering every request after ``latency`` seconds and at most 8 requests in flight
per credential (429 beyond); run ``plain_sync.py`` (httpx + the official ``dropbox`` SDK, one request
at a time); then ``invoicesync sync`` on the same Billit data into a fresh Dropbox sandbox. Print wall
time, the ratio, requests per service, CPU seconds, peak RSS and the lower bound, and append them to
``benchmarks/RESULTS.md``.

The lower bound of a run: the largest of (a) each service's requests x latency / 8 (the in-flight
cap), (b) the sequential listing pages of the largest company plus one document's chain (order
detail, file, upload), x latency, and (c) CPU seconds / cores.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
CAP = 8  #: requests in flight per (service, credential)
PAGE = 120  #: Billit's largest page
SEED = 7


# -- sandboxes, each in its own process ------------------------------------------------------------

def serve_forever(plugin: str, documents: int, latency: float, home: Path) -> None:
    """``--serve``: start one sandbox, print how to reach it (one JSON line), run until stdin closes."""
    from invoicesync.accounts import sandbox_settings
    from invoicesync.plugins import Plugins
    from invoicesync.sandbox import serve

    plugins = Plugins.discover(only=[plugin])
    app = plugins.call(plugin, "sandbox", options={"documents": documents, "seed": SEED})
    app.latency = latency
    app.max_in_flight = CAP
    running = serve(app, tls=getattr(app, "tls", False), tls_dir=home / "ca")
    print(json.dumps({"url": running.url, "settings": sandbox_settings(plugins, plugin, running),
                      "secrets": app.account_secrets(), "ca": str(running.ca_file or "")}), flush=True)
    sys.stdin.read()
    running.stop()


@dataclass
class Sandbox:
    plugin: str
    url: str
    settings: dict[str, Any]
    secrets: dict[str, str]
    ca: str
    process: subprocess.Popen[str] = field(repr=False)

    def requests(self) -> list[dict[str, Any]]:
        with httpx.Client(verify=self.ca or True, timeout=60) as http:
            return list(http.get(f"{self.url}/__sandbox__/requests").json())

    def round_trip_ms(self, times: int = 30) -> float:
        """Median answer time of the (never delayed) admin route on one kept-alive connection: a few
        ms at most when the server sets TCP_NODELAY; ~40 ms per answer with Nagle + delayed ACK."""
        samples = []
        with httpx.Client(verify=self.ca or True, timeout=60) as http:
            http.get(f"{self.url}/__sandbox__/requests?probe")
            for _ in range(times):
                started = time.perf_counter()
                http.delete(f"{self.url}/__sandbox__/faults")  # tiny answer, headers and body in two writes
                samples.append((time.perf_counter() - started) * 1000)
        return statistics.median(samples)


@contextlib.contextmanager
def sandbox(plugin: str, documents: int, latency: float, home: Path) -> Iterator[Sandbox]:
    command = [sys.executable, __file__, "--serve", plugin, "--documents", str(documents),
               "--latency", str(latency), "--home", str(home)]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"the {plugin} sandbox did not start")
        info = json.loads(line)
        yield Sandbox(plugin, info["url"], info["settings"], info["secrets"], info["ca"], process)
    finally:
        if process.stdin:
            process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- measuring a child process ---------------------------------------------------------------------

@dataclass
class Run:
    wall: float
    cpu: float
    max_rss_mib: float
    exit_code: int
    output: str


def measure(command: list[str], env: dict[str, str] | None = None) -> Run:
    """Wall time, CPU (the child and its own children) and peak RSS of one command."""
    with tempfile.TemporaryFile("w+") as out:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, text=True,
                                   env={**os.environ, **(env or {})})
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        output = out.read()
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, process.returncode, output)


def service_requests(box: Sandbox, since: int = 0) -> tuple[int, int]:
    """(requests answered, of which 429) since the ``since``-th request of the log, admin excluded."""
    log = [r for r in box.requests()[since:] if not r["path"].startswith("/__sandbox__/")]
    return len(log), sum(1 for r in log if r["status"] == 429)


def dropbox_contents(box: Sandbox) -> list[str]:
    """The content hashes of every file in a Dropbox sandbox (to check both runs moved the same)."""
    token = json.loads(box.secrets["oauth_token"])["access_token"]
    hashes: list[str] = []
    with httpx.Client(base_url=box.url, verify=box.ca or True, timeout=60,
                      headers={"Authorization": f"Bearer {token}"}) as http:
        page = http.post("/2/files/list_folder", json={"path": "", "recursive": True}).json()
        while True:
            hashes += [e["content_hash"] for e in page["entries"] if e[".tag"] == "file"]
            if not page.get("has_more"):
                return sorted(hashes)
            page = http.post("/2/files/list_folder/continue", json={"cursor": page["cursor"]}).json()


# -- the two contenders ----------------------------------------------------------------------------

def plain(billit: Sandbox, dropbox: Sandbox) -> Run:
    token = json.loads(dropbox.secrets["oauth_token"])["access_token"]
    return measure([sys.executable, str(HERE / "plain_sync.py"), "--billit", billit.url,
                    "--api-key", billit.secrets["api_key"], "--dropbox", dropbox.url, "--token", token])


def connect_accounts(billit: Sandbox, dropbox: Sandbox, home: Path) -> dict[str, str]:
    """A fresh home with one Billit and one Dropbox account; the environment to run it with."""
    from invoicesync.accounts import connect
    from invoicesync.context import NonInteractiveUI
    from invoicesync.workspace import Workspace

    env = {"INVOICESYNC_SECRETS": "file", "INVOICESYNC_HOME": str(home)}
    os.environ.update(env)
    with Workspace.open(home) as workspace:
        for box, name in ((billit, "billit"), (dropbox, "dropbox")):
            for key, value in box.secrets.items():
                workspace.secrets(name).set(key, value)
            connect(workspace, box.plugin, ui=NonInteractiveUI(), name=name, settings=box.settings,
                    companies=("*",))
    return env


def compile_sources() -> None:
    """Give invoicesync its bytecode, as an installed package (pip compiles wheels) and the plain
    script's dependencies in site-packages have it. The checkout's editable sources have no
    ``__pycache__`` where ``PYTHONDONTWRITEBYTECODE`` is set (this machine sets it), so each run
    would otherwise compile every module of core and the plugins first (~0.3-0.5 CPU s)."""
    sources = [str(HERE.parent / "core" / "src"), *map(str, sorted((HERE.parent / "plugins").glob("*/src")))]
    writable = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    subprocess.run([sys.executable, "-m", "compileall", "-q", *sources], check=False, stdout=subprocess.DEVNULL,
                   env=writable)


def invoicesync(home: Path, env: dict[str, str]) -> Run:
    compile_sources()
    return measure([sys.executable, "-m", "invoicesync", "--home", str(home), "sync"], env)


# -- one latency -----------------------------------------------------------------------------------

def one(orders: int, latency: float, work: Path) -> dict[str, Any]:
    per_company = orders // 2
    with sandbox("billit", per_company, latency, work / "billit") as billit:
        rtt = {"billit": billit.round_trip_ms()}
        with sandbox("dropbox", 0, latency, work / "dropbox-plain") as target:
            rtt["dropbox"] = target.round_trip_ms()
            before = len(billit.requests())
            plain_run = plain(billit, target)
            plain_requests = {"billit": service_requests(billit, before), "dropbox": service_requests(target)}
            plain_files = dropbox_contents(target)
        with sandbox("dropbox", 0, latency, work / "dropbox-invoicesync") as target:
            home = work / "home"
            env = connect_accounts(billit, target, home)
            # connect's own calls (company lists, account checks) are part of setting up, not of the sync
            billit_before = len(billit.requests())
            dropbox_before = len(target.requests())
            ours = invoicesync(home, env)
            ours_requests = {"billit": service_requests(billit, billit_before),
                             "dropbox": service_requests(target, dropbox_before)}
            our_files = dropbox_contents(target)
    if plain_run.exit_code or ours.exit_code:
        raise RuntimeError(f"a run failed:\nplain ({plain_run.exit_code}): {plain_run.output[-2000:]}\n"
                           f"invoicesync ({ours.exit_code}): {ours.output[-2000:]}")
    listing_pages = math.ceil(per_company / PAGE) or 1
    bound = max(
        max(count for count, _ in ours_requests.values()) * latency / CAP,
        (listing_pages + 3) * latency,
        ours.cpu / (os.cpu_count() or 1),
    )
    return {
        "orders": orders, "latency_ms": round(latency * 1000), "files": len(our_files),
        "same_files": plain_files == our_files, "sandbox_rtt_ms": {k: round(v, 2) for k, v in rtt.items()},
        "plain": _row(plain_run, plain_requests), "invoicesync": _row(ours, ours_requests),
        "speedup": round(plain_run.wall / ours.wall, 2), "lower_bound_s": round(bound, 2),
        "to_lower_bound": round(ours.wall / bound, 1) if bound else None,
    }


def _row(run: Run, requests: dict[str, tuple[int, int]]) -> dict[str, Any]:
    return {"wall_s": round(run.wall, 2), "cpu_s": round(run.cpu, 2), "max_rss_mib": round(run.max_rss_mib),
            "requests": {k: n for k, (n, _) in requests.items()},
            "throttled_429": {k: t for k, (_, t) in requests.items()}}


# -- output ----------------------------------------------------------------------------------------

def table(results: list[dict[str, Any]]) -> str:
    lines = ["| orders | latency | files | same files | plain s | invoicesync s | speed-up | lower bound s | "
             "inv./bound | requests plain (billit/dropbox) | requests inv. | 429s inv. | CPU s plain/inv. | "
             "peak RSS MiB plain/inv. | sandbox RTT ms |",
             "|" + "---|" * 15]
    for r in results:
        p, o = r["plain"], r["invoicesync"]
        lines.append(
            f"| {r['orders']} | {r['latency_ms']} ms | {r['files']} | {'yes' if r['same_files'] else 'NO'} | "
            f"{p['wall_s']} | {o['wall_s']} | {r['speedup']}x | {r['lower_bound_s']} | {r['to_lower_bound']}x | "
            f"{p['requests']['billit']}/{p['requests']['dropbox']} | "
            f"{o['requests']['billit']}/{o['requests']['dropbox']} | "
            f"{o['throttled_429']['billit']}/{o['throttled_429']['dropbox']} | {p['cpu_s']}/{o['cpu_s']} | "
            f"{p['max_rss_mib']}/{o['max_rss_mib']} | "
            f"{r['sandbox_rtt_ms']['billit']}/{r['sandbox_rtt_ms']['dropbox']} |")
    return "\n".join(lines)


def machine() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{platform.node()}: {platform.system()} {platform.release()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, load average {load} at start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=500, help="orders in all (2 companies): 500, 2000, 10000")
    parser.add_argument("--latency-ms", default="0,25", help="latencies to run, comma-separated")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--no-write", action="store_true", help="do not append to benchmarks/RESULTS.md")
    parser.add_argument("--note", default="", help="a line to keep with the results (e.g. what else ran)")
    parser.add_argument("--label", help="what code ran (default: this checkout's commit)")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--documents", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--latency", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_forever(args.serve, args.documents, args.latency, args.home)
        return
    started = machine()
    results = []
    for latency_ms in (float(x) for x in args.latency_ms.split(",")):
        with tempfile.TemporaryDirectory(prefix="invoicesync-compare-") as tmp:
            results.append(one(args.orders, latency_ms / 1000, Path(tmp)))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(table(results))
    if not args.no_write:
        command = "python benchmarks/compare.py " + " ".join(sys.argv[1:])
        commit = args.label or "commit " + subprocess.run(
            ["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        with open(HERE / "RESULTS.md", "a") as out:
            out.write(f"\n## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {commit}\n\n"
                      f"Machine: {started}.  \nCommand: `{command}`\n"
                      + (f"\n{args.note}\n" if args.note else "") + f"\n{table(results)}\n")


if __name__ == "__main__":
    main()
