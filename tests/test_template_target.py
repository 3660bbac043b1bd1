"""The generated target's placement under a race: the name it chose is taken before its write.

Batches run in parallel, so two documents with one name can both see it free; the conformance
check `test_colliding_names_both_land_distinct` met this only under load. Here the race is made
to happen every time: the first write is refused (409, as the template's sandbox answers).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from invoicesync import RemoteError
from invoicesync.cli._new_plugin import render_plugin


@pytest.fixture
def generated(tmp_path: Path) -> Iterator[ModuleType]:
    project = render_plugin("acme_race", "target", tmp_path / "acme_race")
    sys.path.insert(0, str(project / "src"))
    try:
        yield importlib.import_module("invoicesync_acme_race.plugin")
    finally:
        sys.path.remove(str(project / "src"))
        for name in [m for m in sys.modules if m.startswith("invoicesync_acme_race")]:
            del sys.modules[name]


class RacedClient:
    """A service where someone else writes at the chosen path between the look and the write."""

    def __init__(self) -> None:
        self.files: dict[str, dict[str, Any]] = {}
        self.raced = False

    def find(self, path: str) -> dict[str, Any] | None:
        return self.files.get(path)

    def create(self, path: str, content: Any, size: int) -> dict[str, Any]:
        if not self.raced:
            self.raced = True
            self.files[path] = {"id": "theirs", "sha256": "someone else's bytes"}
            raise RemoteError(f"a file already exists at {path}", status=409, code="path_taken")
        self.files[path] = {"id": "ours", "sha256": "our bytes"}
        return self.files[path]


def test_a_name_taken_before_the_write_is_placed_again(generated: ModuleType) -> None:
    client = RacedClient()
    ref = SimpleNamespace(sha256="our bytes", size=9)
    path, held, wrote = generated._deliver(client, "Acme/INV-1.pdf", ref, SimpleNamespace(dry_run=False))
    assert (wrote, path, held["id"]) == (True, "Acme/INV-1 (2).pdf", "ours")
    assert client.files["Acme/INV-1.pdf"]["id"] == "theirs"  # the other file is left alone
