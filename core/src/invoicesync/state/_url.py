"""State URLs (``state_url`` in invoicesync.toml, ``INVOICESYNC_STATE_URL``), read without a driver."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

#: The schemes of a PostgreSQL state (libpq's own).
POSTGRES_SCHEMES = ("postgresql", "postgres")


def is_postgres_url(url: str | None) -> bool:
    return bool(url) and urlsplit(url or "").scheme in POSTGRES_SCHEMES


def redacted(url: str) -> str:
    """``url`` without its password, fit for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    credentials, host = parts.netloc.rsplit("@", 1)
    return urlunsplit(parts._replace(netloc=f"{credentials.split(':', 1)[0]}:***@{host}"))
