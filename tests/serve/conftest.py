"""Fixtures of the dashboard tests: a home with an admin, a TestClient, logging in."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from invoicesync.server import Users, create_app
from invoicesync.workspace import Workspace
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

ADMIN, PASSWORD = "admin", "correct horse battery staple"


@dataclass
class Dashboard:
    client: TestClient
    workspace: Workspace

    def csrf(self, path: str = "/sync") -> str:
        match = re.search(r'name="csrf" value="([^"]+)"', self.client.get(path).text)
        assert match, f"no CSRF token in {path}"
        return match.group(1)

    def login(self, name: str = ADMIN, password: str = PASSWORD) -> None:
        response = self.client.post("/login", data={"username": name, "password": password, "next": "/sync",
                                                     "csrf": self.csrf("/login")}, follow_redirects=False)
        assert response.status_code == 303, response.text

    def post(self, path: str, data: dict[str, str] | None = None, **kwargs: object) -> object:
        return self.client.post(path, data={"csrf": self.csrf(), **(data or {})}, follow_redirects=False)


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``/metrics`` read by Prometheus's own parser: value by (sample name, sorted labels)."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id still, with the smallest cost: the default's 0.2 s a hash would make these tests slow."""
    from argon2 import PasswordHasher
    from invoicesync.server import _users

    monkeypatch.setattr(_users, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


@pytest.fixture
def dashboard(memory_workspace: Workspace) -> Iterator[Dashboard]:
    """The dashboard over the in-memory source and target, not logged in yet."""
    Users(memory_workspace.home).add(ADMIN, PASSWORD)
    app = create_app(memory_workspace, allowed_hosts=["testserver"])
    with TestClient(app) as client:
        yield Dashboard(client, memory_workspace)


@pytest.fixture
def admin(dashboard: Dashboard) -> Dashboard:
    dashboard.login()
    return dashboard
