"""The coordinator fills export tasks from several import answers: a task per answer (one document,
for a one-document company) cost a whole task's CPU per document."""

from __future__ import annotations

from typing import Any, cast

import pytest
from invoicesync.distributed import CelerySettings, _coordinator
from invoicesync.distributed._app import EXPORT_TASK, IMPORT_TASK
from invoicesync.distributed._coordinator import _Run
from invoicesync.distributed._wire import report_part
from invoicesync.pipeline import RunControl, SyncReport
from invoicesync.workspace import Workspace


class Coordinator(_Run):
    """The coordinator's bookkeeping, with the tasks it would queue kept in a list."""

    def __init__(self, export_batch: int) -> None:
        super().__init__(cast(Workspace, None), CelerySettings(export_batch=export_batch), SyncReport(), RunControl())
        self.queued: list[tuple[str, tuple[Any, ...]]] = []
        self.targets = {"folder": "options"}
        self.sent = {"folder": set()}

    def _send(self, task: str, pending: set[str], *args: Any) -> None:
        pending.add(f"task-{len(self.queued)}")
        self.queued.append((task, args))

    def answer(self, task: str, changed: list[str], more: bool = False) -> None:
        self._take(task, {"report": report_part(SyncReport()), "changed": changed, "more": more,
                          "where": ["billit", "c1"]})

    def export_batches(self) -> list[list[str]]:
        return [list(args[1]) for task, args in self.queued if task == EXPORT_TASK]


def test_export_tasks_are_filled_from_several_import_answers_and_the_rest_goes_when_the_imports_are_done() -> None:
    run = Coordinator(export_batch=3)
    run.imports = {"i1", "i2", "i3", "i4", "i5"}
    for number, task in enumerate(["i1", "i2", "i3", "i4"]):
        run.answer(task, [f"d{number}"])
    assert run.export_batches() == [["d0", "d1", "d2"]]  # the fourth waits for more
    run.answer("i5", ["d4"], more=True)  # that company's next chunk: imports still under way
    assert run.export_batches() == [["d0", "d1", "d2"]] and [t for t, _ in run.queued].count(IMPORT_TASK) == 1
    run.imports.clear()  # the next chunk answered with nothing new
    run._flush_if_due()
    assert run.export_batches() == [["d0", "d1", "d2"], ["d3", "d4"]]


def test_documents_wait_no_longer_than_the_linger_while_imports_go_on(monkeypatch: pytest.MonkeyPatch) -> None:
    run = Coordinator(export_batch=25)
    run.imports = {"i1", "i2"}
    run.answer("i1", ["d0"])
    run._flush_if_due()
    assert run.export_batches() == []  # an import still runs, and the document came a moment ago
    assert run.waiting_since is not None
    monkeypatch.setattr(_coordinator.time, "monotonic", lambda: run.waiting_since + _coordinator.EXPORT_LINGER)
    run._flush_if_due()
    assert run.export_batches() == [["d0"]]
