"""CPU and PostgreSQL round trips of one Celery task, measured in process without Celery.

The world of ``workers.py`` (the Billit sandbox in its own process, 25 ms per request, many small
companies over many accounts, a local folder as target, a fresh PostgreSQL schema): a worker's
runtime is opened once, as ``invoicesync worker`` does, then every import task (one per company)
and every export task (batches of ``export_batch``) is run by calling the task functions directly.
CPU is this process's (every thread: the sandbox is another process), from ``time.process_time``,
so load does not inflate it; round trips are the statements psycopg sends (queries, and the BEGIN,
COMMIT and SET it sends itself) and connections opened. ``--profile FILE`` writes a cProfile of the tasks.

    .venv/bin/python benchmarks/task_cpu.py --companies 64 --accounts 16
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workers import billit, make_home, postgres_schema


class RoundTrips:
    """Counts psycopg's round trips and new connections (every thread) while installed."""

    def __init__(self) -> None:
        self.waits = 0
        self.connects = 0
        self.queries: Counter[str] = Counter()

    @contextmanager
    def installed(self) -> Iterator[RoundTrips]:
        import psycopg

        command, connect = psycopg.Connection._exec_command, psycopg.Connection.connect.__func__
        execute = psycopg.Cursor.execute
        counter = self

        def counting_command(self: Any, *args: Any, **kwargs: Any) -> Any:
            counter.waits += 1  # (a commit with no transaction open sends nothing: not counted)
            return command(self, *args, **kwargs)

        def counting_connect(cls: Any, *args: Any, **kwargs: Any) -> Any:
            counter.connects += 1
            return connect(cls, *args, **kwargs)

        def naming_execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            text = query.decode() if isinstance(query, bytes) else str(query)
            counter.queries[" ".join(text.split())[:90]] += 1
            counter.waits += 1
            return execute(self, query, *args, **kwargs)

        psycopg.Connection._exec_command = counting_command  # type: ignore[method-assign]
        psycopg.Connection.connect = classmethod(counting_connect)  # type: ignore[method-assign, assignment]
        psycopg.Cursor.execute = naming_execute  # type: ignore[method-assign]
        try:
            yield self
        finally:
            psycopg.Connection._exec_command = command  # type: ignore[method-assign]
            psycopg.Connection.connect = classmethod(connect)  # type: ignore[method-assign, assignment]
            psycopg.Cursor.execute = execute  # type: ignore[method-assign]


def measure(args: argparse.Namespace, source: dict[str, Any], state_url: str, work: Path) -> dict[str, Any]:
    from invoicesync.distributed import CelerySettings, TaskLeases, WorkerRuntime
    from invoicesync.distributed._coordinator import interleaved
    from invoicesync.distributed._tasks import export_batch, import_chunk
    from invoicesync.workspace import Workspace

    home = work / "home"
    make_home(home, source, args.accounts, state_url, "amqp://guest:guest@127.0.0.1:5672/unused", None)
    workspace = Workspace.open(home)
    workspace.plugins.load_all()
    settings = CelerySettings.from_config(workspace.config)
    runtime = WorkerRuntime(workspace, settings, TaskLeases(state_url))
    sources = [workspace.account(f"billit-{n}") for n in range(args.accounts)]
    profile = cProfile.Profile() if args.profile else None
    trips = RoundTrips()
    changed: list[str] = []
    result: dict[str, Any] = {}
    try:
        with trips.installed():
            for kind in ("import", "export"):
                before = (time.process_time(), trips.waits, trips.connects)
                trips.queries.clear()
                if profile:
                    profile.enable()
                if kind == "import":
                    for account, company in interleaved(sources):
                        changed += import_chunk(runtime, account, company, False)["changed"]
                    tasks = len(changed)
                else:
                    size = args.export_batch or settings.export_batch
                    batches = [changed[i:i + size] for i in range(0, len(changed), size)]
                    for batch in batches:
                        export_batch(runtime, "folder", batch)
                    tasks = len(batches)
                if profile:
                    profile.disable()
                cpu, waits, connects = (now - then for now, then in
                                        zip((time.process_time(), trips.waits, trips.connects), before, strict=True))
                documents = max(1, len(changed))
                result[kind] = {"tasks": tasks, "documents": len(changed), "cpu_s": round(cpu, 3),
                                "cpu_ms_per_document": round(cpu * 1000 / documents, 2),
                                "round_trips_per_document": round(waits / documents, 2),
                                "connects": connects,
                                "top_queries": trips.queries.most_common(args.queries)}
    finally:
        runtime.leases.close()
        workspace.close()
    if profile:
        profile.dump_stats(args.profile)
    delivered = sum(1 for p in (home / "out").rglob("*") if p.is_file())
    result["delivered_files"] = delivered
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--companies", type=int, default=64)
    parser.add_argument("--documents", type=int, default=1, help="documents per company")
    parser.add_argument("--accounts", type=int, default=16)
    parser.add_argument("--latency-ms", type=float, default=25.0)
    parser.add_argument("--export-batch", type=int, default=0,
                        help="documents per export task (default: the config's export_batch; the coordinator "
                             "sends each import answer's documents as they come, one per one-document company)")
    parser.add_argument("--profile", default="", help="write a cProfile of the tasks to this file")
    parser.add_argument("--queries", type=int, default=0, help="list the N most frequent statements")
    args = parser.parse_args()
    os.environ["INVOICESYNC_SECRETS"] = "file"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    with billit(args.companies, args.documents, args.accounts, args.latency_ms / 1000) as source, \
            postgres_schema() as state_url, tempfile.TemporaryDirectory(prefix="invoicesync-task-cpu-") as tmp:
        result = measure(args, source, state_url, Path(tmp))
    print(json.dumps({"load": load, **result}, indent=1))


if __name__ == "__main__":
    main()
