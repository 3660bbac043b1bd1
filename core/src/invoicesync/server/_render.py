"""Templates (autoescaped) and the context every page gets: the user and the CSRF token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from ._auth import csrf_token

HERE = Path(__file__).parent
_env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                          undefined=jinja2.StrictUndefined)


def render(request: Request, name: str, context: dict[str, Any] | None = None, *,
           status_code: int = 200) -> HTMLResponse:
    page = _env.get_template(name).render(
        request=request, user=request.session.get("user"), csrf=csrf_token(request.session), **(context or {}))
    return HTMLResponse(page, status_code=status_code)
