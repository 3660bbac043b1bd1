"""Throughput of ``sync --executor celery`` with 1, 2 and 4 ``invoicesync worker`` processes.

The Billit sandbox runs in its own process with a latency per request (25 ms by default) and at
most 8 requests in flight per credential (429 beyond), like ``compare.py``; its companies are shared
out between enough accounts, each with an API key of its own, that the per-credential cap does not
set the pace. Each measurement gets a fresh home, a fresh PostgreSQL schema and a RabbitMQ vhost of
its own; the documents go to a local folder. A plain ``sync`` (one process) of the same source is
measured with ``--workers 0``. Wall time counts from enqueueing to the last answer; the workers are
started (and ready) before. Appends a table to ``RESULTS.md`` unless ``--no-write``.

What it is built to show, on a small machine: a worker's throughput set by latency, not by CPU.
Each worker runs ``--concurrency`` tasks at once (1 by default) over many small companies (one
document each, as tests/scale), so a worker has about one request in flight: ~4 requests of 25 ms
per company. Then N workers do N times the work in the same time, as long as the machine has the
CPU for N times the work — the table gives every process's CPU seconds (workers, coordinator,
sandbox, PostgreSQL, RabbitMQ; from /proc, so load does not inflate them) and how busy the whole
machine was (every user's processes), so a run that ran out of CPU shows it.

    .venv/bin/python benchmarks/workers.py                      # 1, 2, 4 workers, 25 ms
    .venv/bin/python benchmarks/workers.py --workers 0,1,4 --companies 128 --documents 10 --concurrency 4
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CAP = 8  #: requests in flight per credential, as compare.py
POSTGRES = os.environ.get("INVOICESYNC_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
RABBIT = "amqp://guest:guest@127.0.0.1:5672"


def serve_forever(companies: int, documents: int, accounts: int, latency: float) -> None:
    """``--serve``: the Billit sandbox with one API key per account; one JSON line; until stdin closes."""
    from invoicesync.sandbox import serve
    from invoicesync_billit.sandbox import BillitSandbox

    app = BillitSandbox(documents=documents, companies=companies, seed=11)
    keys = [f"bench-key-{n}" for n in range(accounts)]
    app.api_keys.update(keys)
    app.latency = latency
    app.max_in_flight = CAP
    running = serve(app)
    print(json.dumps({"url": running.url, "settings": app.account_settings(running.url), "keys": keys,
                      "parties": [str(c.party_id) for c in app.companies], "pid": os.getpid()}), flush=True)
    sys.stdin.read()
    running.stop()


@contextmanager
def billit(companies: int, documents: int, accounts: int, latency: float) -> Iterator[dict[str, Any]]:
    process = subprocess.Popen([sys.executable, __file__, "--serve", "--companies", str(companies), "--documents",
                                str(documents), "--accounts", str(accounts), "--latency", str(latency)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        yield json.loads(process.stdout.readline())
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(30)


@contextmanager
def postgres_schema() -> Iterator[str]:
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
        try:
            yield f"{POSTGRES}?options=-csearch_path%3D{schema}"
        finally:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


@contextmanager
def vhost() -> Iterator[str]:
    name = f"invoicesync-bench-{uuid.uuid4().hex[:8]}"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", name], check=True, capture_output=True)
    try:
        subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", name, "guest", ".*", ".*", ".*"], check=True,
                       capture_output=True)
        yield f"{RABBIT}/{name}"
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", name], capture_output=True)


def make_home(home: Path, source: dict[str, Any], accounts: int, state_url: str, broker: str,
              max_in_flight: int | None) -> None:
    from invoicesync.accounts import connect
    from invoicesync.context import NonInteractiveUI
    from invoicesync.workspace import Workspace

    home.mkdir(parents=True)
    (home / "invoicesync.toml").write_text(f'state_url = "{state_url}"\n[celery]\nbroker_url = "{broker}"\n'
                                           'queue = "bench"\nexport_batch = 25\n')
    settings = {**source["settings"], **({"max_in_flight": max_in_flight} if max_in_flight else {})}
    with Workspace.open(home) as workspace:
        for number in range(accounts):
            name = f"billit-{number}"
            workspace.secrets(name).set("api_key", source["keys"][number])
            connect(workspace, "billit", ui=NonInteractiveUI(), name=name, settings=settings,
                    companies=source["parties"][number::accounts])
        connect(workspace, "localfs", ui=NonInteractiveUI(), name="folder", settings={"root": str(home / "out")})


def wait_ready(logs: list[Path], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not all(" ready." in log.read_text(errors="replace") for log in logs):
        if time.monotonic() > deadline:
            raise RuntimeError("the workers did not start: " + " / ".join(log.read_text()[-500:] for log in logs))
        time.sleep(0.2)


# -- CPU accounting, from /proc: load-insensitive, unlike wall time -----------------------------------

TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu(pid: int, *, children: bool = False) -> float:
    """CPU seconds of ``pid`` so far (with its reaped children's, for a server that forks them)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if children else 0)
    return ticks / TICK


def service_cpu(names: tuple[str, ...]) -> float:
    """CPU seconds of every process called one of ``names`` (PostgreSQL's backends come and go: the
    postmaster's reaped-children time holds the ones that ended). Includes other users of the server."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                name = (entry / "comm").read_text().strip()
            except OSError:
                continue
            if name in names:
                total += process_cpu(int(entry.name), children=True)
    return total


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (every process, every user), from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(values) - values[3] - values[4]) / TICK


def snapshot(source_pid: int, workers: list[int]) -> dict[str, float]:
    return {"workers": sum(process_cpu(pid) for pid in workers), "sandbox": process_cpu(source_pid),
            "postgres": service_cpu(("postgres", "postmaster")), "rabbitmq": service_cpu(("beam.smp",)),
            "machine": machine_busy()}


def one(source: dict[str, Any], accounts: int, workers: int, concurrency: int, max_in_flight: int | None,
        work: Path) -> dict[str, Any]:
    env = {**os.environ, "INVOICESYNC_SECRETS": "file"}
    with postgres_schema() as state_url, vhost() as broker:
        home = work / f"home-{workers}"
        make_home(home, source, accounts, state_url, broker, max_in_flight)
        command = [sys.executable, "-m", "invoicesync", "--home", str(home)]
        processes, logs = [], []
        try:
            for number in range(workers):
                logs.append(work / f"worker-{workers}-{number}.log")
                with open(logs[-1], "wb") as log:
                    processes.append(subprocess.Popen([*command, "worker", "-c", str(concurrency), "-l", "INFO"],
                                                      stdout=log, stderr=subprocess.STDOUT, env=env))
            if workers:
                wait_ready(logs)
            load = os.getloadavg()[0]
            pids = [p.pid for p in processes]
            before = snapshot(source["pid"], pids)
            started = time.perf_counter()
            executor = ["--executor", "celery"] if workers else []
            coordinator = subprocess.Popen([*command, "sync", "--json", *executor], stdout=subprocess.PIPE,
                                           stderr=subprocess.DEVNULL, text=True, env=env)
            assert coordinator.stdout is not None
            output = coordinator.stdout.read()
            _, _, usage = os.wait4(coordinator.pid, 0)
            wall = time.perf_counter() - started
            after = snapshot(source["pid"], pids)  # the workers' CPU over the run, not their start or stop
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait()
    report = json.loads(output)
    documents = report["imported"].get("new", 0)
    cpu = {name: after[name] - before[name] for name in after}
    cpu["coordinator"] = usage.ru_utime + usage.ru_stime  # its start included: a `sync` pays it too
    ours = cpu["coordinator"] + cpu["workers"]
    return {"workers": workers or "plain sync", "exit_code": report["exit_code"], "documents": documents,
            "delivered": report["exported"].get("folder", {}).get("delivered", 0), "wall_s": round(wall, 2),
            "docs_per_s": round(documents / wall, 1), "load": round(load, 1),
            **{f"cpu_{name}": round(value, 2) for name, value in cpu.items()},
            "invoicesync_ms_per_doc": round(ours * 1000 / max(1, documents), 2),
            "machine_busy_cores": round(cpu["machine"] / wall, 2)}


def table(results: list[dict[str, Any]], base: float) -> str:
    cores = os.cpu_count() or 1
    lines = ["| workers | documents | delivered | exit | wall s | docs/s | vs 1 worker | load (1 min) "
             "| CPU s: coordinator / workers / sandbox / PostgreSQL / RabbitMQ | invoicesync CPU ms per document "
             f"| machine busy (of {cores} cores) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        parts = " / ".join(str(r[f"cpu_{name}"]) for name in ("coordinator", "workers", "sandbox", "postgres",
                                                             "rabbitmq"))
        lines.append(f"| {r['workers']} | {r['documents']} | {r['delivered']} | {r['exit_code']} | {r['wall_s']} | "
                     f"{r['docs_per_s']} | {r['docs_per_s'] / base:.2f}x | {r['load']} | {parts} | "
                     f"{r['invoicesync_ms_per_doc']} | {r['machine_busy_cores']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="1,2,4", help="worker counts, comma-separated (0: a plain sync)")
    parser.add_argument("--companies", type=int, default=256)
    parser.add_argument("--documents", type=int, default=1, help="documents per company")
    parser.add_argument("--accounts", type=int, default=64, help="Billit accounts, each with its own API key")
    parser.add_argument("--concurrency", type=int, default=1, help="tasks per worker")
    parser.add_argument("--max-in-flight", type=int, default=None,
                        help="each Billit account's max_in_flight setting (default: the plugin's, 8)")
    parser.add_argument("--latency-ms", type=float, default=25.0)
    parser.add_argument("--no-write", action="store_true", help="do not append to benchmarks/RESULTS.md")
    parser.add_argument("--note", default="")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--latency", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_forever(args.companies, args.documents, args.accounts, args.latency)
        return
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    machine = f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}, load average {load}"
    results = []
    with billit(args.companies, args.documents, args.accounts, args.latency_ms / 1000) as source, \
            tempfile.TemporaryDirectory(prefix="invoicesync-workers-") as tmp:
        for workers in (int(x) for x in args.workers.split(",")):
            results.append(one(source, args.accounts, workers, args.concurrency, args.max_in_flight, Path(tmp)))
            print(json.dumps(results[-1]), flush=True)
    base = next((r["docs_per_s"] for r in results if r["workers"] == 1), results[0]["docs_per_s"]) or 1.0
    print(table(results, base))
    if not args.no_write:
        command = "python benchmarks/workers.py " + " ".join(sys.argv[1:])
        with open(HERE / "RESULTS.md", "a") as out:
            out.write(f"\n## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, workers.py\n\nMachine: {machine} at start.  \n"
                      f"Command: `{command}`\n" + (f"\n{args.note}\n" if args.note else "")
                      + f"\n{table(results, base)}\n")


if __name__ == "__main__":
    main()
