"""Conformance suites for connector authors: subclass one in your plugin's tests.

    SourceConformance   paging, cursor, resume, 429 + Retry-After, 401 + refresh,
                        rotating refresh tokens, malformed payloads
    TargetConformance   idempotent re-push, name collisions, large files in bounded memory,
                        crash between write and ledger, partial failure per document,
                        every file exactly once, the files option, deletions per on_delete

See ``docs/testing.md`` for the adapter each one asks for.
"""

from ._observe import RequestObserver, Seen
from .kit_source import KitRecord, KitSource
from .source import SourceConformance, SourceEnv
from .target import StoredObject, TargetConformance, TargetEnv, objects_in_folder

__all__ = [
    "KitRecord",
    "KitSource",
    "RequestObserver",
    "Seen",
    "SourceConformance",
    "SourceEnv",
    "StoredObject",
    "TargetConformance",
    "TargetEnv",
    "objects_in_folder",
]
