"""``worker``: run the tasks that ``sync --executor celery`` enqueues (a Celery worker)."""

from __future__ import annotations

import os
import socket

import click

from ..errors import ConfigError
from ._common import State, handle_errors, pass_state


@click.command()
@click.option("--concurrency", "-c", type=click.IntRange(min=1), default=4, show_default=True,
              help="Tasks this worker runs at once (threads; the work waits on the network, not the CPU).")
@click.option("--queue", "-Q", default=None, help="Consume this queue (default: [celery] queue, or invoicesync).")
@click.option("--loglevel", "-l", default="INFO", show_default=True, help="Celery's log level.")
@pass_state
@handle_errors
def worker(state: State, concurrency: int, queue: str | None, loglevel: str) -> None:
    """Run a Celery worker for `sync --executor celery`: imports and exports, from the broker's queue.

    \b
    Every worker shares the PostgreSQL state (state_url) and the blob store (the home's blobs/
    on one machine, or blob_url). Stop it with SIGTERM: running tasks finish first;
    a killed worker's tasks are delivered to another worker (acks_late), where they resume.
    SIGUSR1 prints every thread's stack to the log (Celery's handler).
    """
    try:
        from ..distributed import (
            CelerySettings,
            TaskLeases,
            WorkerConsumer,
            WorkerRuntime,
            make_app,
            require_postgres,
            set_runtime,
        )
    except ImportError:
        raise ConfigError("the Celery executor needs celery: pip install 'invoicesync[celery]'") from None
    from dataclasses import replace

    workspace = state.workspace()
    require_postgres(workspace)
    # Before the task threads start: get() is safe under threads, but a plugin registered while
    # another thread calls a hook resets the routed callers under it (Plugins.register).
    workspace.plugins.load_all()
    settings = CelerySettings.from_config(workspace.config)
    if queue:
        settings = replace(settings, queue=queue)
    url = getattr(workspace.state, "url", "")
    leases = TaskLeases(url)
    set_runtime(WorkerRuntime(workspace, settings, leases))
    app = make_app(settings)
    click.echo(f"invoicesync worker: queue {settings.queue!r} on {settings.redacted_broker}, "
               f"{concurrency} at once", err=True)
    try:
        app.Worker(hostname=f"invoicesync-{os.getpid()}@{socket.gethostname()}", concurrency=concurrency,
                   pool="threads", queues=[settings.queue], loglevel=loglevel, quiet=True,
                   consumer_cls=WorkerConsumer).start()
    finally:
        set_runtime(None)
        leases.close()
