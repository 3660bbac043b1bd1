"""A re-sync with nothing changed, at a large library, into all four targets: this checkout against another.

    python benchmarks/resync.py --base /path/to/other/checkout --orders 2000,10000 --runs 10

The issue's bar: under a second at 0 ms latency at 500, 2,000 and 10,000 orders with localfs, Dropbox,
Drive and Business Central. A real first sync of 10,000 orders takes minutes (BC's request budget),
so the home is built once per order count: a real first sync of a few orders from the Billit sandbox
into every target's sandbox (accounts, cursors, each target's export options and caches, all as a
sync leaves them; run by ``--base``, so both checkouts can open its schema), then the library padded
through the store to N documents, each copied from a synced one and recorded as delivered to every
target as that one was. Billit lists nothing after the cursor and no target has a backlog, so the
re-sync asks Billit for its listing pages only and no target anything (checked on every run).

Each side gets its own copy of the home (a newer checkout may migrate it) and one re-sync to warm up
(migration, bytecode), not counted; then the two take turns, ``--runs`` re-syncs in all. Prints one
JSON line per re-sync (wall and CPU seconds of the process, requests) and the medians per side.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from ab_cpu import _sync
from all_targets import COMPANIES, TARGETS, connect_home
from compare import Sandbox, sandbox, service_requests

#: Orders in the Billit sandbox: the real first sync's (the rest of the library is padded).
SYNCED = 20


def pad_library(state: Path, orders: int, schema: int) -> None:
    """Add documents until the library holds ``orders``, each delivered to every target as a synced one is."""
    from invoicesync.models import Document
    from invoicesync.state import SqliteStore

    store = SqliteStore(state, target_version=schema)  # no newer than the base knows
    try:
        rows = store._all("SELECT body FROM documents ORDER BY rowid")
        synced = [Document.model_validate_json(row["body"]) for row in rows]
        ledgers = {d.id: store.deliveries_for(d.id) for d in synced}
        assert synced and all(len(ledgers[d.id]) == len(TARGETS) for d in synced), "the first sync fell short"
        with store.transaction():
            for n in range(orders - len(synced)):
                like = synced[n % len(synced)]
                source_id = f"padded-{n}"
                copy = like.model_copy(update={
                    "id": Document.make_id(like.source, like.account, like.company.id, source_id),
                    "source_id": source_id, "number": f"PAD-{n}"})
                assert store.upsert_document(copy) == "new"
                for delivery in ledgers[like.id]:
                    store.record_delivery(delivery.model_copy(update={
                        "document_id": copy.id, "version": copy.version,
                        "target_path": f"{delivery.target_path}-{n}" if delivery.target_path else None}))
    finally:
        store.close()


def at_schema(version: int, build: Callable[[], dict[str, str]]) -> dict[str, str]:
    """``build()``, which opens the home's state in this process, creating it at ``version`` (the base's)."""
    from invoicesync.state import SqliteStore

    defaults = SqliteStore.__init__.__kwdefaults__
    assert defaults is not None
    was = defaults["target_version"]
    defaults["target_version"] = version
    try:
        return build()
    finally:
        defaults["target_version"] = was


def checked(row: dict[str, Any], boxes: dict[str, Sandbox], before: dict[str, int]) -> dict[str, Any]:
    row["requests"] = {name: service_requests(box, before[name])[0] for name, box in boxes.items()}
    targets = sum(c for name, c in row["requests"].items() if name != "billit")
    if targets or row["requests"]["billit"] > COMPANIES * 2:
        raise RuntimeError(f"not a re-sync with nothing to do: {row['requests']}")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=Path, required=True, help="the other checkout (core/src, plugins/*/src)")
    parser.add_argument("--orders", default="2000,10000", help="library sizes, comma-separated")
    parser.add_argument("--runs", type=int, default=10, help="re-syncs in all per size, half each")
    parser.add_argument("--base-schema", type=int, default=13, help="the base's schema version (the home's)")
    options = parser.parse_args()
    base_path = ":".join(str(p) for p in [options.base / "core" / "src", *sorted(options.base.glob("plugins/*/src"))])
    for orders in [int(n) for n in options.orders.split(",")]:
        results: dict[str, list[dict[str, Any]]] = {"base": [], "this": []}
        with tempfile.TemporaryDirectory(prefix="invoicesync-resync-") as tmp, ExitStack() as stack:
            work = Path(tmp)
            billit = stack.enter_context(sandbox("billit", SYNCED // COMPANIES, 0.0, work / "billit"))
            targets: dict[str, Sandbox | None] = {
                name: None if name == "localfs" else stack.enter_context(sandbox(name, 0, 0.0, work / name))
                for name in TARGETS}
            boxes = {"billit": billit, **{n: b for n, b in targets.items() if b is not None}}
            built = work / "built" / "home"
            env = {**at_schema(options.base_schema, functools.partial(connect_home, built, billit, targets,
                                                                  bytecode=True)),
                   "PYTHONPATH": base_path}
            _sync(built, env)
            pad_library(built / "state.db", orders, options.base_schema)
            homes = {}
            for side in results:
                homes[side] = work / side / "home"
                shutil.copytree(built, homes[side])
            for number in range(options.runs + 2):
                side = "base" if number % 2 == 0 else "this"
                side_env = {**env, "INVOICESYNC_HOME": str(homes[side])}
                if side == "this":
                    side_env.pop("PYTHONPATH")
                before = {name: len(box.requests()) for name, box in boxes.items()}
                row = checked({"orders": orders, "side": side, **_sync(homes[side], side_env)}, boxes, before)
                row.pop("sql", None)
                row["load"] = round(os.getloadavg()[0], 1)
                print(json.dumps(row), flush=True)
                if number >= 2:  # the first of each side migrates and compiles
                    results[side].append(row)
        for side, rows in results.items():
            wall = statistics.median(r["wall_s"] for r in rows)
            cpu = statistics.median(r["cpu_s"] for r in rows)
            print(f"{orders} orders, {side}: re-sync median wall {wall:.2f} s, CPU {cpu:.2f} s over {len(rows)} runs",
                  file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
