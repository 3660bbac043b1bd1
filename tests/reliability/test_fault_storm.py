"""A fault storm: ≥ 15% of the requests to the source and every target sandbox fail (429, 5xx,
connections reset before the server acts, and after it committed a write), and every access
token is expired early every few seconds (server side, as a revoked token looks); a bounded
number of real ``invoicesync sync`` runs must deliver everything, once.
"""

from __future__ import annotations

import os
import random
import threading
from pathlib import Path
from typing import Any

from ._runner import run_plain
from ._sandboxes import SandboxProcess
from .conftest import COPIES, SCALE, Reliability, failures, record

#: (weight, rule) of the faults a storm draws from. ``drop_after``: the server did the work (the
#: write is committed) and the client never hears of it.
KINDS: list[tuple[float, dict[str, Any]]] = [
    (0.20, {"action": "status", "status": 429}),
    (0.05, {"action": "status", "status": 429, "headers": {"Retry-After": "1"}}),
    (0.15, {"action": "status", "status": 500}),
    (0.05, {"action": "status", "status": 502}),
    (0.15, {"action": "status", "status": 503}),
    (0.20, {"action": "drop"}),
    (0.20, {"action": "drop_after"}),
]
#: Token endpoints (OAuth refresh, Entra, its discovery): the long storm fails them too; the short
#: one spares them, as their known defects have a deterministic test of their own (test_tokens.py).
SPARE_TOKEN_ENDPOINTS = r"^(?!.*(?:token|openid-configuration|discovery/instance)$)"
#: Requests per sandbox the planned faults cover (beyond that the storm calms down).
PLANNED_REQUESTS = 6000
TOKEN_EXPIRY_EVERY = 2.0  # seconds


def storm_rules(rng: random.Random, rate: float, requests: int, path: str) -> list[dict[str, Any]]:
    """One-shot rules that fail about ``rate`` of the first ``requests`` requests, at random.

    The sandbox counts a rule's matches only while no earlier rule fires, so the rule meant for
    the p-th request (the j-th fault, 1-based) skips ``p - j`` matches. One of the first five
    requests always fails."""
    weights = [w for w, _ in KINDS]
    rules = []
    faults = 0
    first = rng.randint(1, 5)  # every sandbox is hit early, even in a short storm of few requests
    for position in range(1, requests + 1):
        if rng.random() < rate or position == first:
            faults += 1
            kind = rng.choices([k for _, k in KINDS], weights)[0]
            rules.append({**kind, "path": path, "after": position - faults, "times": 1})
    return rules


class TokenExpiry(threading.Thread):
    """Expire every access token of the given sandboxes every few seconds, until stopped."""

    def __init__(self, sandboxes: list[SandboxProcess]) -> None:
        super().__init__(daemon=True, name="token-expiry")
        self.sandboxes = sandboxes
        self.stopped = threading.Event()
        self.expiries = 0

    def run(self) -> None:
        while not self.stopped.wait(TOKEN_EXPIRY_EVERY):
            for sandbox in self.sandboxes:
                sandbox.expire_tokens()
            self.expiries += 1


def test_a_fault_storm_delivers_everything_once_within_bounded_runs(reliability: Reliability) -> None:
    rng = random.Random(SCALE.seed + 1)
    world, home = reliability.world, reliability.homes["storm"]
    copy = COPIES["storm"]
    stormy = {"billit": world.billit, **{name.split(":")[0]: s for name, s in world.targets.items()
                                         if name.endswith(f":{copy}")}}
    before = {name: sandbox.fault_counts()["requests"] for name, sandbox in stormy.items()}
    for sandbox in stormy.values():
        path = ".*" if SCALE.token_endpoint_faults else SPARE_TOKEN_ENDPOINTS
        sandbox.add_faults(storm_rules(rng, SCALE.fault_rate, PLANNED_REQUESTS, path))
    expiry = TokenExpiry(list(stormy.values()))
    expiry.start()
    exits: list[int] = []
    outputs: list[str] = []
    try:
        for _ in range(SCALE.storm_runs):
            result = run_plain(home)
            exits.append(result.returncode)
            outputs.append(result.stdout + result.stderr)
            if exits[-1] == 0:
                break
    finally:
        expiry.stopped.set()
        expiry.join()
        fired = {name: sandbox.fault_counts() for name, sandbox in stormy.items()}
        for name, count in fired.items():
            count["requests"] -= before[name]  # the storm's own requests only
        for sandbox in stormy.values():
            sandbox.clear_faults()
    counts = reliability.audit("storm")
    faults = {name: sum(c["fired"].values()) for name, c in fired.items()}
    record("storm", counts, faults={"localfs": 0, "home": 0, **{k: v for k, v in faults.items() if k != "billit"}})
    rates = {name: round(sum(c["fired"].values()) / max(1, c["requests"]), 3) for name, c in fired.items()}
    overall = sum(faults.values()) / max(1, sum(c["requests"] for c in fired.values()))
    summary = (f"seed {SCALE.seed + 1}: exits {exits}, fault rates {rates}, faults {fired}, "
               f"{expiry.expiries} token expiries")
    if os.environ.get("RELIABILITY_DEBUG"):
        Path(os.environ["RELIABILITY_DEBUG"]).write_text("\n=====\n".join(outputs))
    assert overall >= 0.15, summary
    assert exits[-1] == 0, f"no run finished cleanly within {SCALE.storm_runs} runs: {summary}\n{outputs[-1]}"
    assert all(c.total() == 0 for c in counts.values()), summary + "\n" + failures(counts)
