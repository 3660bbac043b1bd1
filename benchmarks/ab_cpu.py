"""CPU seconds of ``invoicesync sync`` from two checkouts, interleaved on the same sandboxes.

    python benchmarks/ab_cpu.py --base /path/to/other/checkout [--orders 500] [--runs 10]

On a shared machine wall times and even CPU seconds drift with the load; running the two versions
turn about (base, this checkout, base, ...) against one Billit sandbox, each sync into a fresh home
and a fresh Dropbox sandbox at 0 ms latency, makes the comparison fair. ``--base`` is a checkout (or
``git archive`` of one) whose ``core/src`` and ``plugins/*/src`` go first on ``PYTHONPATH``. Both run
from bytecode (a shared ``PYTHONPYCACHEPREFIX``, warmed by a first run of each that is not
counted). Prints one JSON line per sync (CPU user/system, voluntary and involuntary context
switches, requests, SQLite statements and write transactions per file moved, and the re-sync with
nothing changed) and the median of each side. The SQLite counts come from ``sqlstats/sitecustomize.py``
(a trace callback on every connection, by database file), so both checkouts are counted alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from compare import connect_accounts, dropbox_contents, sandbox, service_requests

SQL_STATS = Path(__file__).resolve().parent / "sqlstats"


def _sync(home: Path, env: dict[str, str]) -> dict[str, Any]:
    stats = home.with_name(home.name + "-sql.json")
    stats.unlink(missing_ok=True)
    env = {**env, "INVOICESYNC_SQL_STATS": str(stats),
           "PYTHONPATH": ":".join(p for p in (str(SQL_STATS), env.get("PYTHONPATH", "")) if p)}
    with tempfile.TemporaryFile("w+") as out:
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "invoicesync", "--home", str(home), "sync"],
                                   stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env})
        _, status, usage = os.wait4(process.pid, 0)
        if os.waitstatus_to_exitcode(status):
            out.seek(0)
            raise RuntimeError(f"sync failed:\n{out.read()[-2000:]}")
    return {"wall_s": round(time.perf_counter() - started, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "user_s": round(usage.ru_utime, 2), "sys_s": round(usage.ru_stime, 2),
            "switches": usage.ru_nvcsw + usage.ru_nivcsw, "voluntary": usage.ru_nvcsw,
            "involuntary": usage.ru_nivcsw,
            "sql": json.loads(stats.read_text()) if stats.exists() else {}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=Path, required=True, help="the other checkout (core/src, plugins/*/src)")
    parser.add_argument("--orders", type=int, default=500)
    parser.add_argument("--runs", type=int, default=10, help="syncs in all, half each, after one warm-up each")
    options = parser.parse_args()
    base_path = ":".join(str(p) for p in [options.base / "core" / "src", *sorted(options.base.glob("plugins/*/src"))])
    results: dict[str, list[dict[str, Any]]] = {"base": [], "this": []}
    with tempfile.TemporaryDirectory(prefix="invoicesync-ab-") as tmp:
        work = Path(tmp)
        bytecode = {"PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": str(work / "pycache")}
        with sandbox("billit", options.orders // 2, 0.0, work / "billit") as billit:
            for number in range(options.runs + 2):
                side = "base" if number % 2 == 0 else "this"
                with sandbox("dropbox", 0, 0.0, work / f"dropbox{number}") as target:
                    home = work / f"home{number}"
                    env = {**connect_accounts(billit, target, home), **bytecode}
                    if side == "base":
                        env["PYTHONPATH"] = base_path
                    before = len(billit.requests()), len(target.requests())
                    row: dict[str, Any] = {"side": side, **_sync(home, env)}
                    row["requests"] = [service_requests(billit, before[0])[0], service_requests(target, before[1])[0]]
                    row["files"] = files = len(dropbox_contents(target))
                    sql = row.pop("sql")
                    row["sql_per_file"] = {name: [round(c["statements"] / max(files, 1), 1),
                                                  round(c["transactions"] / max(files, 1), 1)]
                                           for name, c in sql.items()}
                    row["statements_per_file"] = round(sum(c["statements"] for c in sql.values()) / max(files, 1), 1)
                    row["transactions_per_file"] = round(
                        sum(c["transactions"] for c in sql.values()) / max(files, 1), 1)
                    row["switches_per_file"] = round(row["switches"] / max(files, 1), 1)
                    row["resync"] = _sync(home, env)
                    row["resync"].pop("sql")
                    row["load"] = round(os.getloadavg()[0], 1)
                print(json.dumps(row), flush=True)
                if number >= 2:  # the first of each side compiles its bytecode
                    results[side].append(row)
    for side, rows in results.items():
        def median(key: str, rows: list[dict[str, Any]] = rows) -> float:
            return round(float(statistics.median(r[key] for r in rows)), 2)

        resync = round(statistics.median(r["resync"]["cpu_s"] for r in rows), 2)
        print(f"{side}: median CPU {median('cpu_s')} s (user {median('user_s')}, sys {median('sys_s')}), "
              f"switches {median('voluntary')} voluntary + {median('involuntary')} involuntary "
              f"({median('switches_per_file')}/file), SQLite {median('statements_per_file')} statements and "
              f"{median('transactions_per_file')} write transactions per file, re-sync CPU {resync} s, "
              f"over {len(rows)} syncs")


if __name__ == "__main__":
    main()
