"""``TargetConformance``: the checks every target plugin must pass, against its own sandbox.

Subclass it in your plugin's tests and fill in what only your connector knows::

    from invoicesync.testing.conformance import StoredObject, TargetConformance

    class TestConformance(TargetConformance):
        plugin = "dropbox"
        write_path = r"/2/files/upload$"        # the write endpoint: crash injection, write counts

        def stored_objects(self, env):
            return [StoredObject(f.path, f.sha256, f.size, f.rev) for f in env.app.files()]

Documents come from a deterministic in-memory source (``KitSource``) through the core pipeline,
so every check exercises ``push_documents`` exactly as a real sync does, ledger included.
"""

from __future__ import annotations

import gc
import hashlib
import os
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest

from ...context import UI, NonInteractiveUI, PluginKind
from ...models import Delivery, DeliveryStatus, Document
from ...pipeline import EXIT_OK, EXIT_PARTIAL, SyncReport, run_sync
from ...plugins import Plugins
from ...sandbox import Fault, RunningSandbox, SandboxApp, serve
from ...workspace import Workspace
from ._common import connect_account, library, load_plugins, sandbox_settings, skip_if_declared
from ._observe import RequestObserver
from .kit_source import KitRecord, KitSource
from .target_files import TARGET, FileAndDeletionChecks

SOURCE = "conformance-source"
MiB = 1024 * 1024
SETTLED = {DeliveryStatus.DELIVERED, DeliveryStatus.UNCHANGED}


@dataclass(frozen=True)
class StoredObject:
    """One object as the target holds it. ``revision`` changes whenever the object is written
    again (a Dropbox ``rev``, a Drive version, a file's inode and mtime); leave it empty if the
    service has none, and write counts (``write_path``) will tell instead."""

    path: str
    sha256: str
    size: int = -1
    revision: str = ""


def objects_in_folder(root: Path) -> list[StoredObject]:
    """``StoredObject``s for every file under ``root``: for targets that write to a folder."""
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(MiB):
                digest.update(chunk)
        stat = os.stat(path)
        found.append(StoredObject(path.relative_to(root).as_posix(), digest.hexdigest(), stat.st_size,
                                  f"{stat.st_ino}:{stat.st_mtime_ns}"))
    return found


@dataclass
class TargetEnv:
    """The target under test, the kit source feeding it, and the home(s) a check runs in."""

    plugin: str
    plugins: Plugins
    source: KitSource
    tmp_path: Path
    app: SandboxApp | None
    running: RunningSandbox | None
    observer: RequestObserver | None
    settings: dict[str, Any] = field(default_factory=dict)
    ui: UI | None = None
    homes: list[Workspace] = field(default_factory=list)

    @property
    def workspace(self) -> Workspace:
        return self.homes[-1]

    def new_home(self) -> Workspace:
        """A fresh home (empty library and ledger) over the same target: a lost or restored state."""
        workspace = Workspace.open(self.tmp_path / f"home-{len(self.homes)}", plugins=self.plugins)
        self.homes.append(workspace)
        connect_account(workspace, SOURCE, SOURCE, {}, None)
        return workspace

    def import_documents(self) -> list[Document]:
        report = run_sync(self.workspace, accounts=[SOURCE])
        assert report.exit_code == EXIT_OK, [p.message for p in report.problems]
        return sorted(library(self.workspace).values(), key=lambda d: d.source_id)

    def connect_target(self) -> None:
        connect_account(self.workspace, self.plugin, TARGET, self.settings, self.running, self.ui)

    def sync(self) -> SyncReport:
        return run_sync(self.workspace)

    def delivery(self, document: Document) -> Delivery | None:
        return self.workspace.state.get_delivery(document.id, TARGET)

    def close(self) -> None:
        for workspace in self.homes:
            workspace.close()


class TargetConformance(FileAndDeletionChecks):
    """The target suite. Class attributes and methods below are the adapter; ``test_*`` are the
    checks (here, and on files and deletions in ``FileAndDeletionChecks``)."""

    #: The plugin's entry-point name (``invoicesync.targets``).
    plugin: ClassVar[str] = ""
    #: Passed to the plugin's ``sandbox(options)`` hook, if it has one.
    sandbox_options: ClassVar[dict[str, Any]] = {"seed": 1}
    #: Account settings laid over the sandbox's own ``account_settings(url)``.
    settings: ClassVar[dict[str, Any]] = {}
    #: Regex over the path of the write endpoint: the crash check drops its answer, and writes are counted.
    write_path: ClassVar[str | None] = None
    write_method: ClassVar[str] = "POST"
    #: How many ordinary documents each check delivers.
    documents: ClassVar[int] = 6
    #: The large-file check's file size, and the share of it that traced memory may peak at.
    large_file_size: ClassVar[int] = 32 * MiB
    memory_ceiling: ClassVar[float] = 0.25
    #: ``{check name: reason}`` for checks that cannot apply. Names: repush, collisions, large_file,
    #: crash_ledger, crash_wire, partial_failure, every_file, files_option, deletions.
    skip_checks: ClassVar[dict[str, str]] = {}

    # -- the adapter ---------------------------------------------------------------------------

    def plugin_object(self) -> Any | None:
        """The plugin object to test instead of the installed entry point (``None``: installed)."""
        return None

    def make_sandbox(self, plugins: Plugins) -> SandboxApp | None:
        """The sandbox to run: the plugin's ``sandbox`` hook if it has one (local targets have none)."""
        if "sandbox" not in plugins.get(self.plugin).hooks:
            return None
        app = plugins.call(self.plugin, "sandbox", options=dict(self.sandbox_options))
        if not isinstance(app, SandboxApp):
            pytest.fail(f"{self.plugin}'s sandbox hook returned {type(app).__name__}, not a SandboxApp")
        return app

    def account_settings(self, env: TargetEnv) -> dict[str, Any]:
        """Settings for the target account: the sandbox's own, plus ``settings``."""
        return sandbox_settings(env.plugins, self.plugin, env.running, self.settings)

    def connect_ui(self, env: TargetEnv) -> UI:
        """The UI ``auth`` gets while connecting: by default one that never asks (the sandbox's
        secrets should be enough). A ``ScriptedUI`` with a ``browser`` can finish an OAuth flow."""
        return NonInteractiveUI()

    def stored_objects(self, env: TargetEnv) -> list[StoredObject]:
        """Every object the target holds now (read it from the sandbox, or the folder)."""
        raise NotImplementedError("override stored_objects(env): list what the target holds")

    def break_one_document(self, env: TargetEnv, documents: list[Document]) -> str | None:
        """Make the next delivery of exactly one document fail; return its id if you know which.
        The default answers the first write with a 400 in the service's own error shape."""
        if env.app is None or not self.write_path:
            raise NotImplementedError("override break_one_document(env, documents) (no write_path to fault)")
        env.app.add_fault(Fault(method=self.write_method, path=self.write_path, status=400, code="BadRequest",
                                times=1))
        return None

    def repair(self, env: TargetEnv) -> None:
        """Undo ``break_one_document``."""
        if env.app is not None:
            env.app.clear_faults()

    def write_count(self, env: TargetEnv) -> int | None:
        """How many writes the target has received (``None``: not countable; revisions tell)."""
        if env.observer is None or not self.write_path:
            return None
        return env.observer.count(self.write_method, self.write_path)

    # -- fixtures ------------------------------------------------------------------------------

    @pytest.fixture
    def target_env(self, tmp_path: Path, invoicesync_home: Path) -> Iterator[TargetEnv]:
        source = KitSource(self.documents)
        plugins = load_plugins(self.plugin, PluginKind.TARGET, self.plugin_object())
        plugins.register(SOURCE, source, kind=PluginKind.SOURCE)
        app = self.make_sandbox(plugins)
        running = serve(app, tls=getattr(app, "tls", False), tls_dir=tmp_path / "sandbox-ca") if app else None
        env = TargetEnv(self.plugin, plugins, source, tmp_path, app, running,
                        RequestObserver(app) if app else None)
        try:
            env.settings = self.account_settings(env)
            env.ui = self.connect_ui(env)
            env.new_home()
            yield env
        finally:
            env.close()
            if running is not None:
                running.stop()

    # -- helpers -------------------------------------------------------------------------------

    def _deliver_all(self, env: TargetEnv) -> list[Document]:
        documents = env.import_documents()
        env.connect_target()
        report = env.sync()
        assert report.exit_code == EXIT_OK, [p.message for p in report.problems]
        self._assert_settled(env, documents)
        return documents

    def _assert_settled(self, env: TargetEnv, documents: list[Document]) -> None:
        for document in documents:
            delivery = env.delivery(document)
            assert delivery is not None and delivery.status in SETTLED, (
                f"{document.number}: ledger says {delivery.status.value if delivery else 'nothing'}"
            )

    def _assert_each_once(self, env: TargetEnv, documents: list[Document]) -> list[StoredObject]:
        objects = self.stored_objects(env)
        copies = Counter(o.sha256 for o in objects)
        for document in documents:
            assert document.pdf is not None
            n = copies[document.pdf.sha256]
            assert n == 1, f"{document.number}: the target holds {n} copies of its PDF (expected exactly 1)"
        return objects

    def _relocate(self, env: TargetEnv) -> list[Document]:
        """Start over in a fresh home against the same target, and import the same documents."""
        env.new_home()
        documents = env.import_documents()
        env.connect_target()
        return documents

    # -- the checks ----------------------------------------------------------------------------

    def test_repush_after_lost_ledger_writes_nothing(self, target_env: TargetEnv) -> None:
        skip_if_declared(self.skip_checks, "repush")
        env = target_env
        documents = self._deliver_all(env)
        before, writes = sorted(self._assert_each_once(env, documents), key=repr), self.write_count(env)
        # The ledger is gone (state lost, or restored from an old backup): the target must look up.
        self._relocate(env)
        report = env.sync()
        assert report.exit_code == EXIT_OK, [p.message for p in report.problems]
        self._assert_settled(env, documents)
        self._assert_each_once(env, documents)
        assert sorted(self.stored_objects(env), key=repr) == before, "the re-push rewrote or added objects"
        assert self.write_count(env) == writes, "the re-push sent writes to the target"
        assert report.exported[TARGET].get("delivered", 0) == 0, (
            f"a re-push of unchanged documents reported {report.exported[TARGET]['delivered']} as delivered "
            "(written now); a target that finds its object should report 'unchanged'"
        )

    def test_colliding_names_both_land_distinct(self, target_env: TargetEnv) -> None:
        skip_if_declared(self.skip_checks, "collisions")
        env = target_env
        # Same number, counterparty, date and direction: any naming template renders one name.
        env.source.records = [KitRecord("same-a", "SAME-001"), KitRecord("same-b", "SAME-001")]
        documents = self._deliver_all(env)
        objects = self._assert_each_once(env, documents)
        paths = {o.path for o in objects if o.sha256 in {d.pdf.sha256 for d in documents if d.pdf}}
        assert len(paths) == 2, f"two documents with one name should land as two objects, got {sorted(paths)}"
        # And it stays idempotent: the second one is found again, not written as a third.
        self._relocate(env)
        report = env.sync()
        assert report.exit_code == EXIT_OK, [p.message for p in report.problems]
        self._assert_each_once(env, documents)

    def test_large_file_streams_with_bounded_memory(self, target_env: TargetEnv) -> None:
        skip_if_declared(self.skip_checks, "large_file")
        env = target_env
        size = self.large_file_size
        env.source.records = [KitRecord("large", "LARGE-001", size=size), KitRecord("small", "SMALL-001")]
        documents = env.import_documents()
        env.connect_target()
        gc.collect()
        tracing = tracemalloc.is_tracing()
        if tracing:
            tracemalloc.reset_peak()
        else:
            tracemalloc.start()
        try:
            report = env.sync()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            if not tracing:
                tracemalloc.stop()
        assert report.exit_code == EXIT_OK, [p.message for p in report.problems]
        ceiling = int(size * self.memory_ceiling)
        assert peak < ceiling, (
            f"delivering a {size // MiB} MiB file peaked at {peak / MiB:.1f} MiB of Python memory "
            f"(limit {ceiling / MiB:.1f} MiB): stream it in chunks (ctx.blobs.iter_chunks / a content callable)"
        )
        objects = self._assert_each_once(env, documents)
        large = next(d for d in documents if d.source_id == "large")
        stored = next(o for o in objects if large.pdf and o.sha256 == large.pdf.sha256)
        assert stored.size in (-1, size), f"the large file was stored with {stored.size} bytes, not {size}"

    def test_crash_between_write_and_ledger_leaves_no_duplicate(self, target_env: TargetEnv) -> None:
        skip_if_declared(self.skip_checks, "crash_ledger")
        env = target_env
        documents = self._deliver_all(env)
        before = Counter((o.path, o.sha256) for o in self._assert_each_once(env, documents))
        # What a crash right after the writes leaves behind: the intent ("pending"), no outcome.
        self._relocate(env)
        for document in documents:
            env.workspace.state.record_delivery(Delivery(document_id=document.id, target=TARGET,
                                                         version=document.version, status=DeliveryStatus.PENDING))
        report = env.sync()
        assert report.exit_code == EXIT_OK, [p.message for p in report.problems]
        self._assert_settled(env, documents)
        after = Counter((o.path, o.sha256) for o in self._assert_each_once(env, documents))
        assert after == before, "settling the pending deliveries added or moved objects"

    def test_unknown_outcome_on_the_wire_leaves_no_duplicate(self, target_env: TargetEnv) -> None:
        skip_if_declared(self.skip_checks, "crash_wire")
        env = target_env
        if env.app is None or env.observer is None or not self.write_path:
            pytest.skip("crash_wire: no HTTP write endpoint (write_path) to drop; crash_ledger covers this target")
        documents = env.import_documents()
        env.connect_target()
        # The write happens, then the connection drops: the plugin cannot know the outcome.
        env.app.add_fault(Fault(action="drop_after", method=self.write_method, path=self.write_path, times=1))
        first = env.sync()
        env.app.clear_faults()
        dropped = [s for s in env.observer.matching(self.write_method, self.write_path) if s.status is None]
        assert dropped, f"no write to {self.write_path!r} was dropped: is write_path right?"
        assert all(p.document for p in first.problems), [p.message for p in first.problems]
        second = env.sync()
        assert second.exit_code == EXIT_OK, [p.message for p in second.problems]
        self._assert_settled(env, documents)
        self._assert_each_once(env, documents)

    def test_partial_failure_is_reported_per_document(self, target_env: TargetEnv) -> None:
        skip_if_declared(self.skip_checks, "partial_failure")
        env = target_env
        documents = env.import_documents()
        env.connect_target()
        broken = self.break_one_document(env, documents)
        report = env.sync()
        assert report.exit_code == EXIT_PARTIAL, f"one failed document should make the run partial: {report}"
        counts: dict[str, int] = dict(report.exported.get(TARGET, {}))
        assert counts.get("failed") == 1, f"expected exactly one failed delivery: {dict(counts)}"
        assert counts.get("delivered", 0) + counts.get("unchanged", 0) == len(documents) - 1, (
            f"the other documents should be delivered: {dict(counts)}"
        )
        assert len(report.problems) == 1 and report.problems[0].document, [p.message for p in report.problems]
        failed_id = report.problems[0].document
        assert failed_id in {d.id for d in documents}, f"the problem should name the document, not {failed_id!r}"
        if broken is not None:
            assert failed_id == broken, f"document {broken} was broken, but {failed_id} was reported"
        delivered = [d for d in documents if d.id != failed_id]
        self._assert_settled(env, delivered)
        self._assert_each_once(env, delivered)
        # Fixed, the next run delivers just that one.
        self.repair(env)
        again = env.sync()
        assert again.exit_code == EXIT_OK, [p.message for p in again.problems]
        self._assert_settled(env, documents)
        self._assert_each_once(env, documents)
