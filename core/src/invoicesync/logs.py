"""Log records as text (the default) or as JSON lines (``serve --log-format json``), secrets redacted.

A JSON line is one object: ``time``, ``level``, ``logger``, ``message``, plus ``run``, ``trigger``,
``account`` (and any other field) when known: from ``log_fields`` around the code that logs, or from a
record's ``extra``. The whole line goes through ``redact``, tracebacks included.
"""

from __future__ import annotations

import contextvars
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from .secrets import redact

#: Fields of the run being logged about, for the thread (and tasks) doing it.
_fields: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("invoicesync_log_fields",
                                                                                  default=None)
#: ``extra`` keys a record may carry that a JSON line shows (the rest of a record's attributes are logging's own).
EXTRA_FIELDS = ("run", "trigger", "account", "target", "company", "document")


@contextmanager
def log_fields(**fields: Any) -> Iterator[None]:
    """Add ``fields`` (``None`` values left out) to every JSON log line written inside the block."""
    token = _fields.set({**(_fields.get() or {}), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _fields.reset(token)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **(_fields.get() or {}),
        }
        for name in EXTRA_FIELDS:
            if name in record.__dict__:
                line[name] = record.__dict__[name]
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(line, default=str, ensure_ascii=False))
