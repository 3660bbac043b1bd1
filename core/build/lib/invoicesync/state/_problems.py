"""One-line explanations of a state database SQLite cannot use: what is wrong with which file, and the fix."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def describe_state_error(path: Path, exc: sqlite3.Error) -> str:
    text = str(exc)
    lowered = text.lower()
    if "not a database" in lowered or "malformed" in lowered or "corrupt" in lowered:
        return (f"{path} is not a usable invoicesync state database ({text}); restore it from a back-up, "
                f"or move it aside to start with an empty library (see docs/ops.md, 'Back-up and restore')")
    if "readonly" in lowered or "read-only" in lowered:
        return (f"{path} is read-only for this user ({text}); make it and its folder writable "
                f"(chown/chmod, or a writable mount), or run invoicesync as their owner")
    if "unable to open" in lowered:
        return (f"{path} cannot be opened ({text}); check that it exists and that this user may read "
                f"it and its folder")
    if "locked" in lowered or "busy" in lowered:
        return f"{path} stayed locked by another process ({text}); wait for it to finish and run again"
    return f"{path}: the state database failed ({text})"
