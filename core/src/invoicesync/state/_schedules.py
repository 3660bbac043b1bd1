"""The schedules' state: a schedule set on the dashboard, and each account's last scheduled run.

A schedule declared in ``invoicesync.toml`` stays there; the row then only keeps the run's outcome.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ._library import Row


@dataclass
class ScheduleRecord:
    account: str
    #: A schedule set on the dashboard (``every 15m`` / ``cron 0 */2 * * *``), or ``None``.
    spec: str | None
    last_started_at: datetime | None
    last_finished_at: datetime | None
    #: ``{"result": "ok"|"partial"|"failed"|"busy", "exit_code": …, "message": …}`` of the last attempt
    last_result: dict[str, Any] | None


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


class ScheduleQueries:
    """Mixed into the SQL stores (SQLite and PostgreSQL)."""

    def _exec(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        raise NotImplementedError

    def _all(self, sql: str, params: tuple[Any, ...] = ()) -> list[Row]:
        raise NotImplementedError

    def schedules(self) -> dict[str, ScheduleRecord]:
        return {row["account"]: ScheduleRecord(
                    row["account"], row["spec"], _when(row["last_started_at"]), _when(row["last_finished_at"]),
                    json.loads(row["last_result"]) if row["last_result"] else None)
                for row in self._all("SELECT * FROM schedules ORDER BY account")}

    def set_schedule(self, account: str, spec: str | None) -> None:
        self._exec("""INSERT INTO schedules (account, spec) VALUES (?, ?)
                      ON CONFLICT (account) DO UPDATE SET spec = excluded.spec""", (account, spec))

    def record_scheduled_run(self, account: str, started_at: datetime | None, finished_at: datetime,
                             result: dict[str, Any]) -> None:
        """The outcome of a scheduled attempt. ``started_at`` ``None``: it did not run (the home was
        busy), so the last run stays what it was and the account stays due."""
        self._exec(
            """INSERT INTO schedules (account, last_started_at, last_finished_at, last_result) VALUES (?, ?, ?, ?)
               ON CONFLICT (account) DO UPDATE SET
                   last_started_at = COALESCE(excluded.last_started_at, schedules.last_started_at),
                   last_finished_at = excluded.last_finished_at, last_result = excluded.last_result""",
            (account, started_at.isoformat(timespec="seconds") if started_at else None,
             finished_at.isoformat(timespec="seconds"), json.dumps(result)))
