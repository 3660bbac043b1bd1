"""The target suite's checks on hook API 2: every file of a document, the ``files`` export option,
and deletions at the source. Mixed into ``TargetConformance``, whose adapter they use."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, ClassVar

import pytest

from ...models import DeliveryStatus, Document, FileRole
from ...pipeline import EXIT_OK, SyncReport
from ._common import skip_if_declared
from .kit_source import KitRecord

if TYPE_CHECKING:
    from .target import StoredObject, TargetEnv

TARGET = "conformance-target"
#: Signed terms, a spreadsheet and a photo: what people attach to an invoice.
ATTACHMENTS = (("terms.pdf", "application/pdf"),
               ("lines.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
               ("photo.jpg", "image/jpeg"))


def files_records() -> list[KitRecord]:
    """A plain invoice, one with a UBL, one with a UBL and attachments, and an image-only receipt."""
    return [KitRecord("f-plain", "FILES-001"), KitRecord("f-ubl", "FILES-002", ubl=True),
            KitRecord("f-all", "FILES-003", ubl=True, attachments=ATTACHMENTS),
            KitRecord("f-photo", "FILES-004", image_only=True)]


class FileAndDeletionChecks:
    """``test_*`` checks on files and deletions; the adapter lives on ``TargetConformance``."""

    plugin: ClassVar[str]
    skip_checks: ClassVar[dict[str, str]]
    #: ``{on_delete value: the status a deletion yields under it}``: "deleted", "skipped" or
    #: "failed". Each value is tried (the plugin's default first, unset). A target whose hook API
    #: range stops at 1 is never handed a deletion: it needs none, and core records "skipped".
    on_delete: ClassVar[dict[str, str]] = {}

    if TYPE_CHECKING:
        def stored_objects(self, env: TargetEnv) -> list[StoredObject]: ...
        def _deliver_all(self, env: TargetEnv) -> list[Document]: ...
        def _relocate(self, env: TargetEnv) -> list[Document]: ...

    # -- helpers -------------------------------------------------------------------------------

    def _api_2(self, env: TargetEnv) -> bool:
        return env.plugins.get(self.plugin).info.api_version[1] >= 2

    def _skip_before_api_2(self, env: TargetEnv, check: str) -> None:
        if not self._api_2(env):
            pytest.skip(f"{check}: the plugin declares hook API 1, which hands targets no PushRequest.files")

    def _assert_files_once(self, env: TargetEnv, documents: list[Document],
                           roles: set[FileRole] | None = None) -> list[StoredObject]:
        """Each file of each document (of ``roles``, if given) is held exactly once; with ``roles``,
        no file of another role is held at all."""
        objects = self.stored_objects(env)
        copies = Counter(o.sha256 for o in objects)
        for document in documents:
            for file in document.files:
                n = copies[file.sha256]
                if roles is None or file.role in roles:
                    assert n == 1, (f"{document.number}: the target holds {n} copies of its {file.role.value} "
                                    f"{file.name!r} (expected exactly 1)")
                else:
                    assert n == 0, (f"{document.number}: the target holds its {file.role.value} {file.name!r}, "
                                    f"which the account's files option was not asked for")
        return objects

    def _sync_ok(self, env: TargetEnv) -> SyncReport:
        report = env.sync()
        assert report.exit_code == EXIT_OK, [p.message for p in report.problems]
        return report

    # -- the checks ----------------------------------------------------------------------------

    def test_every_file_lands_exactly_once(self, target_env: TargetEnv) -> None:
        skip_if_declared(self.skip_checks, "every_file")
        env = target_env
        self._skip_before_api_2(env, "every_file")
        env.source.records = files_records()
        documents = self._deliver_all(env)
        before = sorted(self._assert_files_once(env, documents), key=repr)
        # Found again, every file of it, with the ledger gone.
        self._relocate(env)
        report = self._sync_ok(env)
        self._assert_files_once(env, documents)
        assert sorted(self.stored_objects(env), key=repr) == before, "the re-push rewrote or added objects"
        assert report.exported[TARGET].get("delivered", 0) == 0, (
            f"a re-push of documents whose files are all there reported {report.exported[TARGET]}")

    def test_narrower_files_option_is_honoured_then_back_filled(self, target_env: TargetEnv) -> None:
        skip_if_declared(self.skip_checks, "files_option")
        env = target_env
        self._skip_before_api_2(env, "files_option")
        env.source.records = files_records()
        documents = env.import_documents()
        env.settings = {**env.settings, "files": ["pdf", "ubl"]}
        env.connect_target()
        report = self._sync_ok(env)
        photo = next(d for d in documents if d.source_id == "f-photo")
        delivery = env.delivery(photo)
        assert delivery is not None and delivery.status is DeliveryStatus.SKIPPED, (
            "an image-only document has none of the files pdf, ubl: it should be skipped")
        narrowed = self._assert_files_once(env, documents, roles={FileRole.PDF, FileRole.UBL})
        assert report.exported[TARGET].get("delivered") == len(documents) - 1, report.exported[TARGET]
        # Widened back: the attachments are back-filled, nothing already there is written again.
        env.settings = {**env.settings, "files": ""}
        env.connect_target()
        self._sync_ok(env)
        objects = self._assert_files_once(env, documents)
        assert set(map(repr, narrowed)) <= set(map(repr, objects)), (
            "widening the files option rewrote or moved files that were already there")
        again = self._sync_ok(env)
        assert not again.exported, f"a run after the back-fill exported again: {again.exported}"

    def test_deletion_follows_the_declared_policy(self, target_env: TargetEnv) -> None:
        skip_if_declared(self.skip_checks, "deletions")
        env = target_env
        policies = self._policies(env)
        # Each policy deletes a document of its own: with a UBL and attachments, or image-only, in
        # turn (a hook API 1 target may write only PDFs: it gets plain ones).
        api_2 = self._api_2(env)
        victims = [KitRecord(f"d{i}", f"DEL-{i:03d}", ubl=api_2 and i % 2 == 0,
                             attachments=ATTACHMENTS if api_2 and i % 2 == 0 else (),
                             image_only=api_2 and i % 2 == 1) for i in range(len(policies))]
        env.source.records = [*(files_records() if api_2 else []), *victims]
        documents = self._deliver_all(env)
        by_id = {d.source_id: d for d in documents}
        for (policy, expected), victim in zip(policies, victims, strict=True):
            if policy is not None:
                env.settings = {**env.settings, "on_delete": policy}
                env.connect_target()
            others = [d for d in documents if d.source_id != victim.source_id]
            self._delete_one(env, by_id[victim.source_id], others, policy, expected)

    def _policies(self, env: TargetEnv) -> list[tuple[str | None, str]]:
        """``(on_delete to set, expected status)``: the plugin's default (``None``: left unset) first."""
        if not self._api_2(env):
            return [(None, "skipped")]
        if not self.on_delete:
            pytest.fail("declare what a deletion yields: on_delete = {'<policy>': 'deleted' | 'skipped' | "
                        "'failed', ...} (the plugin declares hook API 2, so it is handed deletions)", pytrace=False)
        bad = {p: s for p, s in self.on_delete.items() if s not in ("deleted", "skipped", "failed")}
        assert not bad, f"on_delete maps each policy to deleted, skipped or failed, not {bad}"
        field: Any = env.plugins.get(self.plugin).info.settings.model_fields.get("on_delete")
        default = field.default if field is not None else next(iter(self.on_delete))
        assert default in self.on_delete, f"on_delete declares no outcome for the plugin's default {default!r}"
        return [(None, self.on_delete[default]), *((p, s) for p, s in self.on_delete.items() if p != default)]

    def _delete_one(self, env: TargetEnv, document: Document, others: list[Document], policy: str | None,
                    expected: str) -> None:
        label = f"on_delete = {policy or 'its default'}"
        before = self.stored_objects(env)
        shas = {f.sha256 for f in document.files}
        held = {(o.path, o.sha256) for o in before if o.sha256 in shas}
        env.source.delete(document.source_id)
        report = env.sync()
        counts = dict(report.exported.get(TARGET, {}))
        assert counts == {expected: 1}, f"{label}: a deletion should yield {expected!r}, the run reported {counts}"
        delivery = env.delivery(document)
        assert delivery is not None and delivery.status.value == expected, (
            f"{label}: the ledger says {delivery.status.value if delivery else 'nothing'}, not {expected}")
        after = self.stored_objects(env)
        # Other documents' files stay as they were (objects of no file, a sidecar or a BC draft, aside).
        theirs = {f.sha256 for d in others for f in d.files} - shas
        assert sorted((o for o in after if o.sha256 in theirs), key=repr) == \
            sorted((o for o in before if o.sha256 in theirs), key=repr), (
            f"{label}: deleting {document.number} changed other documents' objects")
        if expected == "skipped":
            assert sorted(after, key=repr) == sorted(before, key=repr), (
                f"{label}: the deletion was reported skipped, yet the target's objects changed")
        elif expected == "deleted":
            still = held & {(o.path, o.sha256) for o in after}
            assert not still, f"{label}: reported deleted, but the target still holds {sorted(p for p, _ in still)}"
            copies = Counter(o.sha256 for o in after if o.sha256 in shas)
            assert all(n <= 1 for n in copies.values()), f"{label}: the deletion left copies behind: {copies}"
        else:
            assert any(p.document == document.id for p in report.problems), (
                f"{label}: a failed deletion should be a problem naming {document.id}")
        if expected != "failed":
            quiet = env.sync()
            assert not quiet.exported.get(TARGET), f"{label}: the next run exported again: {quiet.exported}"
