"""The Celery application: one per broker and queue, made the same way by workers and coordinators.

Why these settings:

- ``acks_late`` with ``reject_on_worker_lost``: a task is acknowledged only once it has answered,
  so a worker killed mid-task (or cut off from the broker) leaves its task to be delivered again;
  the tasks are idempotent, and the leases in the state keep two copies apart.
- ``prefetch_multiplier = 1``: a worker takes no more than it is running, so a dead worker's
  backlog is small and idle workers get the rest.
- the ``threads`` pool: the work is network-bound; and a ``SIGKILL`` of the worker takes its tasks
  with it (no orphaned pool process goes on pushing after its message was handed to another worker).
- no result backend: each task writes its answer into the state, where the coordinator takes it.
- a short heartbeat on the worker's consumer connection (``WorkerConsumer``): RabbitMQ keeps a
  consumer's unacknowledged tasks for as long as its connection looks alive, and a worker whose
  event loop stops answering (a frozen process or host; once, after a broker cut, a consumer stuck
  reading a garbled frame) looked alive for Celery's 120 s heartbeat, 2-4 minutes in all. The
  coordinator keeps the default: it only publishes, and sends no heartbeats between publishes.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from celery.worker.consumer import Consumer

from ._settings import CelerySettings
from ._tasks import WorkerRuntime, export_batch, import_chunk

IMPORT_TASK = "invoicesync.import_company"
EXPORT_TASK = "invoicesync.export_batch"

#: Seconds: RabbitMQ drops a worker's connection after about twice this without a sign of life.
WORKER_HEARTBEAT = 15.0

#: Set by ``invoicesync worker`` before it consumes; a task without it fails (and is not acked).
_runtime: WorkerRuntime | None = None


def make_app(settings: CelerySettings) -> Celery:
    app = Celery("invoicesync", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        result_backend=None,
        task_default_queue=settings.queue,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_pool="threads",
        # Redis hands an unacknowledged task to another worker after this long: longer than any
        # task runs (imports are chunked), so a live task is never run twice because it is slow.
        broker_transport_options={"visibility_timeout": max(600.0, settings.chunk_seconds * 5)},
    )

    @app.task(name=IMPORT_TASK, bind=True, max_retries=None)
    def import_company(self: Task, run: str, account: str, company: str, full: bool = False) -> None:
        _answer(self, run, import_chunk(_ready(), account, company, full))

    @app.task(name=EXPORT_TASK, bind=True, max_retries=None)
    def export_documents(self: Task, run: str, target: str, document_ids: list[str]) -> None:
        _answer(self, run, export_batch(_ready(), target, document_ids))

    return app


class WorkerConsumer(Consumer):
    """Celery's consumer, with ``WORKER_HEARTBEAT`` on its connections (and only on its own)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["amqheartbeat"] = WORKER_HEARTBEAT
        super().__init__(*args, **kwargs)


def set_runtime(runtime: WorkerRuntime | None) -> None:
    global _runtime
    _runtime = runtime


def _ready() -> WorkerRuntime:
    if _runtime is None:
        raise RuntimeError("the invoicesync tasks run only in `invoicesync worker`")
    return _runtime


def _answer(task: Task, run: str, answer: dict[str, Any]) -> None:
    """Hand the answer to the coordinator; if the state cannot take it, try again later (the task
    is idempotent) rather than leave the coordinator waiting for an answer that never comes."""
    try:
        _ready().workspace.state.record_task_result(run, str(task.request.id), answer)
    except Exception as exc:
        raise task.retry(exc=exc, countdown=5) from exc
