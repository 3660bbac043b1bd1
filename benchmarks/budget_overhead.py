"""What a request budget costs per request: the in-process ``Budget`` against the ``SharedBudget``
kept in a SQLite or PostgreSQL state (docs/scale-out.md quotes the figures).

    python benchmarks/budget_overhead.py [--requests 2000] [--threads 1,8] [--postgres URL]

Each thread takes a slot and gives it back, ``--requests`` times in all, with no request in
between: the figure is the budget's own cost (round trips, locks), per request, in microseconds.
``--rate`` gives the account a rate limit too (one more round trip per request when shared).
PostgreSQL runs in a fresh schema, dropped afterwards.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from invoicesync.http import Budget, RequestBudget, SharedBudget
from invoicesync.state import SqliteStore
from invoicesync.state._postgres import PostgresStore


def _per_request_us(budget: RequestBudget, requests: int, threads: int) -> float:
    def work(count: int) -> None:
        for _ in range(count):
            with budget.slot():
                pass

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, [requests // threads] * threads))
    return (time.perf_counter() - started) / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--threads", default="1,8")
    parser.add_argument("--rate", type=int, default=None, help="requests per second allowed (default: none)")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    options = parser.parse_args()
    rate = options.rate * 3600 if options.rate else None  # an hour's worth: never waits, only counts
    period = 3600.0

    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with tempfile.TemporaryDirectory() as folder, psycopg.connect(options.postgres, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
        try:
            sqlite = SqliteStore(Path(folder) / "state.db")
            postgres = PostgresStore(f"{options.postgres}?options=-csearch_path%3D{schema}")
            kinds: dict[str, Callable[[], RequestBudget]] = {
                "in-process Budget": lambda: Budget(rate, period, concurrency=8),
                "SharedBudget, SQLite": lambda: SharedBudget(sqlite.budget_ledger(), "bench", rate, period),
                "SharedBudget, PostgreSQL": lambda: SharedBudget(postgres.budget_ledger(), "bench", rate, period),
            }
            print(f"{platform.node()}: {platform.python_version()}, {options.requests} slots per row, "
                  f"rate limit {'on' if rate else 'off'}")
            print("| budget | threads | µs per request |\n|---|---|---|")
            for name, make in kinds.items():
                for threads in (int(t) for t in options.threads.split(",")):
                    print(f"| {name} | {threads} | {_per_request_us(make(), options.requests, threads):.0f} |")
            sqlite.close()
            postgres.close()
        finally:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    main()
