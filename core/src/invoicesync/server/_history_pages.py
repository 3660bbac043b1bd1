"""History (past runs), ``/healthz`` and ``/metrics`` (Prometheus text format)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..workspace import Workspace
from ._metrics import ServerMetrics

PAGE_SIZE = 50


def routes(workspace: Workspace, server_metrics: ServerMetrics, render: Callable[..., Response]) -> list[Route]:
    async def history(request: Request) -> Response:
        before = request.query_params.get("before", "")
        runs = workspace.state.runs(before=int(before) if before.isdigit() else None, limit=PAGE_SIZE + 1)
        more = len(runs) > PAGE_SIZE
        runs = runs[:PAGE_SIZE]
        return render(request, "history.html", {
            "runs": runs, "next_url": f"/history?before={runs[-1].id}" if more else None})

    async def run(request: Request) -> Response:
        run_id = request.path_params["run_id"]
        record = workspace.state.run(run_id)
        if record is None:
            return render(request, "missing.html", {"what": "run"}, status_code=404)
        return render(request, "run.html", {"run": record})

    async def healthz(request: Request) -> Response:
        workspace.state.library_counts()  # the state answers (an error here is a 500: unhealthy)
        return JSONResponse({"status": "ok"})

    async def metrics(request: Request) -> Response:
        # the library's counts are a query: off the event loop
        return Response(await run_in_threadpool(server_metrics.text), media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/history", history, methods=["GET"]),
        Route("/history/{run_id:int}", run, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
