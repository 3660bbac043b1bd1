"""History (past runs), ``/healthz`` and ``/metrics`` (Prometheus text format)."""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..models import DeliveryStatus
from ..workspace import Workspace

PAGE_SIZE = 50


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def metrics_text(workspace: Workspace) -> str:
    counts = workspace.state.library_counts()
    lines = ["# HELP invoicesync_documents_imported Documents in the library, by source account.",
             "# TYPE invoicesync_documents_imported gauge"]
    lines += [f'invoicesync_documents_imported{{account="{_label(a)}"}} {n}' for a, n in counts.documents.items()]
    lines += ["# HELP invoicesync_deliveries Documents at each target, by delivery status.",
              "# TYPE invoicesync_deliveries gauge"]
    targets = sorted({t for t, _ in counts.deliveries})
    for target in targets:  # every status, zeros too, so a rate or an alert has a series to read
        for status in DeliveryStatus:
            n = counts.deliveries.get((target, status.value), 0)
            lines.append(f'invoicesync_deliveries{{target="{_label(target)}",status="{status.value}"}} {n}')
    return "\n".join(lines) + "\n"


def routes(workspace: Workspace, render: Callable[..., Response]) -> list[Route]:
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
        return PlainTextResponse(metrics_text(workspace), media_type="text/plain; version=0.0.4")

    return [
        Route("/history", history, methods=["GET"]),
        Route("/history/{run_id:int}", run, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
