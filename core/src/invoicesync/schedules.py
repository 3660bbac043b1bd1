"""When ``invoicesync serve`` syncs an account on its own: every N minutes, or on a cron expression.

    [accounts.billit-acme]
    plugin = "billit"
    every = "15m"                   # s, m, h, d; combined as in "1h30m"

    [accounts.archive]
    plugin = "localfs"
    cron = "0 */2 * * *"            # minute hour day month weekday, in UTC

A schedule is due when its next slot after the account's last run has come. The last run is the
latest of the account's last sync (a CLI or timer ``sync`` counts too) and the server's last
scheduled run of it; so a server that was down runs a missed account once on start-up, never once
per missed slot. Cron expressions need ``croniter`` (``invoicesync[server]``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .errors import ConfigError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(?:\d+[smhd])+")
#: A shorter interval is refused: a sync lists every account's changes, a busy loop would hammer the services.
MIN_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class Schedule:
    every: timedelta | None = None
    cron: str | None = None

    def __post_init__(self) -> None:
        if (self.every is None) == (self.cron is None):
            raise ValueError("a schedule is either `every` or `cron`")

    def describe(self) -> str:
        """As the Sync page's form takes it back: ``15m`` or the cron expression."""
        if self.cron is not None:
            return self.cron
        assert self.every is not None
        seconds, parts = int(self.every.total_seconds()), []
        for unit, size in sorted(_UNITS.items(), key=lambda item: -item[1]):
            if seconds >= size:
                parts.append(f"{seconds // size}{unit}")
                seconds %= size
        return "".join(parts)

    def next_after(self, moment: datetime) -> datetime:
        """The first slot after ``moment`` (UTC)."""
        if self.every is not None:
            return moment + self.every
        from croniter import croniter  # only cron schedules need it

        return croniter(self.cron, moment.astimezone(UTC)).get_next(datetime).astimezone(UTC)

    def next_run(self, last_run: datetime | None, since: datetime) -> datetime:
        """When the account is due. ``last_run``: its last run, if any; ``since``: when the schedule
        began to count (the server's start), the base when it never ran. An interval with no run yet
        is due at once; a cron expression waits for its next slot."""
        if last_run is None:
            return since if self.every is not None else self.next_after(since)
        return self.next_after(last_run)


def parse_every(text: str) -> timedelta:
    compact = text.replace(" ", "").lower()
    if not _DURATION.fullmatch(compact):
        raise ConfigError(f"`every = {text!r}` is not an interval; write it like \"15m\", \"2h\" or \"1h30m\"")
    seconds = sum(int(n) * _UNITS[u] for n, u in re.findall(r"(\d+)([smhd])", compact))
    if timedelta(seconds=seconds) < MIN_EVERY:
        raise ConfigError(f"`every = {text!r}` is too short; the shortest interval is 1m")
    return timedelta(seconds=seconds)


def check_cron(expression: str) -> str:
    """The expression, once ``croniter`` has read it (five fields: minute hour day month weekday).
    Without croniter (only ``serve`` runs schedules, and its extra brings it) the fields are counted."""
    try:
        from croniter import croniter
        valid = croniter.is_valid(expression)
    except ImportError:
        valid = True  # the CLI alone never runs a schedule: a file meant for `serve` must not fail `sync`
    if len(expression.split()) != 5 or not valid:
        raise ConfigError(f"`cron = {expression!r}` is not a cron expression; write five fields, "
                          f"minute hour day month weekday, like \"0 */2 * * *\"")
    return " ".join(expression.split())


def parse_schedule(every: object = None, cron: object = None) -> Schedule | None:
    """A schedule from the TOML's ``every``/``cron`` (strings), or ``None`` when neither is set."""
    if every is not None and cron is not None:
        raise ConfigError("set either `every` or `cron`, not both")
    if every is not None:
        if not isinstance(every, str):
            raise ConfigError("`every` must be a string, like every = \"15m\"")
        return Schedule(every=parse_every(every))
    if cron is not None:
        if not isinstance(cron, str):
            raise ConfigError("`cron` must be a string, like cron = \"0 */2 * * *\"")
        return Schedule(cron=check_cron(cron))
    return None


def parse_form(text: str) -> Schedule | None:
    """What the Sync page's schedule field says: an interval (``15m``), a cron expression, or
    nothing (no schedule)."""
    text = text.strip()
    if not text:
        return None
    if _DURATION.fullmatch(text.replace(" ", "").lower()):
        return Schedule(every=parse_every(text))
    return Schedule(cron=check_cron(text))


def to_text(schedule: Schedule | None) -> str | None:
    """How the state keeps a schedule set on the dashboard (``every 15m`` / ``cron 0 */2 * * *``)."""
    if schedule is None:
        return None
    return f"cron {schedule.cron}" if schedule.cron is not None else f"every {schedule.describe()}"


def from_text(text: str | None) -> Schedule | None:
    if not text:
        return None
    kind, _, value = text.partition(" ")
    return parse_schedule(every=value) if kind == "every" else parse_schedule(cron=value)
