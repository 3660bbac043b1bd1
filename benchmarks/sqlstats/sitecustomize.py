"""Counts SQLite statements and write transactions per database file (``ab_cpu.py --sql``).

Put this folder first on ``PYTHONPATH`` and ``INVOICESYNC_SQL_STATS`` to a file: every connection
``sqlite3.connect`` opens gets a trace callback, and the counts are written there as JSON when the
process exits. It patches the standard library only, so it counts any checkout alike (before and
after). A write transaction: a ``BEGIN`` … ``COMMIT``, or a write statement outside one
(autocommit). Statements a trigger runs are not counted.
"""

from __future__ import annotations

import atexit
import json
import os
import sqlite3
import threading

_path = os.environ.get("INVOICESYNC_SQL_STATS")
if _path:
    _connect = sqlite3.connect
    _lock = threading.Lock()
    _stats: dict[str, dict[str, int]] = {}
    _WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER")

    def _name(database: object) -> str:
        text = os.fspath(database) if isinstance(database, (str, os.PathLike)) else str(database)
        if not text:
            return "(temporary)"
        return os.path.basename(text.split("?")[0]) or text

    def connect(database: object, *args: object, **kwargs: object) -> sqlite3.Connection:
        db = _connect(database, *args, **kwargs)  # type: ignore[arg-type]
        name = _name(database)
        state: dict[str, object] = {"in_txn": False, "last": ""}
        with _lock:
            counts = _stats.setdefault(name, {"connections": 0, "statements": 0, "transactions": 0})
            counts["connections"] += 1

        def trace(sql: str) -> None:
            word = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
            # Python passes a trigger's run as its statement's text again: a repeat of the last
            # text on this connection (the state's is used under one lock) is not a statement.
            with _lock:
                last, state["last"] = state["last"], sql
            if sql == last or word.startswith("--"):
                return
            with _lock:
                counts["statements"] += 1
                if word == "BEGIN":
                    state["in_txn"] = True
                    counts["transactions"] += 1
                elif word in ("COMMIT", "END", "ROLLBACK"):
                    state["in_txn"] = False
                elif not state["in_txn"] and (word in _WRITES or (word == "WITH" and "INSERT" in sql.upper())):
                    counts["transactions"] += 1

        db.set_trace_callback(trace)
        return db

    sqlite3.connect = connect  # type: ignore[assignment]

    @atexit.register
    def _write() -> None:
        with _lock, open(_path, "w") as out:
            json.dump(_stats, out)
