"""Scale-out with Celery: ``invoicesync worker`` runs tasks; ``sync --executor celery`` enqueues them.

An import task per (account, company) — chunked, so none runs for long — and export tasks per
(target, batch). Workers share the PostgreSQL state and the blob store (the home's, or ``blob_url``). See
docs/scale-out.md.
"""

from ._app import EXPORT_TASK, IMPORT_TASK, WORKER_HEARTBEAT, WorkerConsumer, make_app, set_runtime
from ._coordinator import require_postgres, run_celery_sync
from ._leases import TaskLeases
from ._settings import DEFAULT_BROKER, CelerySettings, redacted_broker
from ._tasks import WorkerRuntime

__all__ = [
    "DEFAULT_BROKER", "EXPORT_TASK", "IMPORT_TASK", "CelerySettings", "TaskLeases", "WorkerRuntime", "make_app",
    "WORKER_HEARTBEAT", "WorkerConsumer", "redacted_broker", "require_postgres", "run_celery_sync", "set_runtime",
]
