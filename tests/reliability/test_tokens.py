"""One hiccup at a token endpoint (a 503, then a connection reset) while every access token has
just expired: the run must ride it out like any other transient failure, not fail deliveries.

The storm of ``make test`` spares token endpoints; this is their deterministic counterpart (the
long storm fails them at random too). Entra's client-credentials grant and Dropbox's and Google's
refresh grants can be sent again safely (the refresh tokens do not rotate).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from ._runner import run_plain
from .conftest import COPIES, Reliability

TOKEN_PATHS = {"dropbox": r"^/oauth2/token$", "gdrive": r"^/token$", "dynamics365": r"/oauth2/v2\.0/token$"}


@pytest.fixture(scope="module")
def hiccup_run(reliability: Reliability) -> dict[str, Any]:
    world, home = reliability.world, reliability.homes["tokens"]
    sandboxes = {plugin: world.targets[f"{plugin}:{COPIES['tokens']}"] for plugin in TOKEN_PATHS}
    for plugin, sandbox in sandboxes.items():
        sandbox.expire_tokens()
        sandbox.add_faults([{"action": "status", "status": 503, "path": TOKEN_PATHS[plugin], "times": 1},
                            {"action": "drop", "path": TOKEN_PATHS[plugin], "times": 1}])
    try:
        result = run_plain(home, "--json")
    finally:
        for sandbox in sandboxes.values():
            sandbox.clear_faults()
    report: dict[str, Any] = json.loads(result.stdout)
    return report


@pytest.mark.parametrize("target", ["dropbox", "gdrive", "dynamics365"])
def test_a_token_endpoint_hiccup_fails_no_delivery(hiccup_run: dict[str, Any], target: str) -> None:
    counts = hiccup_run["exported"][target]
    problems = [p["message"] for p in hiccup_run["problems"] if p["where"] == target]
    assert counts.get("failed", 0) == 0, problems[:3]
    assert counts.get("delivered", 0) > 0
