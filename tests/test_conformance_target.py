"""The target conformance suite: localfs and a reference folder target pass it, and each check
fails on a reference target with the one bug that check is about."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from invoicesync import Document
from invoicesync.naming import DEFAULT_TEMPLATE
from invoicesync.testing.conformance import StoredObject, TargetConformance, TargetEnv, objects_in_folder

sys.path.insert(0, str(Path(__file__).parent))  # the reference connectors in conformance_fixtures/

from conformance_fixtures.foldertarget import FolderTargetSuite, block_path, unblock

pytest_plugins = ["pytester"]


class TestLocalFs(TargetConformance):
    """The built-in local folder target, as installed (entry point ``localfs``)."""

    plugin = "localfs"
    on_delete = {"keep": "skipped", "move": "deleted"}

    def account_settings(self, env: TargetEnv) -> dict[str, object]:
        return {"root": str(env.tmp_path / "out")}

    def stored_objects(self, env: TargetEnv) -> list[StoredObject]:
        return objects_in_folder(env.tmp_path / "out")

    def break_one_document(self, env: TargetEnv, documents: list[Document]) -> str | None:
        return block_path(env.tmp_path / "out", documents[1], DEFAULT_TEMPLATE)

    def repair(self, env: TargetEnv) -> None:
        unblock(env.tmp_path / "out")


class TestReferenceFolder(FolderTargetSuite):
    """The whole suite, on the reference folder target with no bug switched on."""


class TestReferenceFolderOnApi1(FolderTargetSuite):
    """A target declaring hook API 1 writes only PDFs and is never handed a deletion: the files
    checks skip, saying why, and its deletions are expected as core records them (skipped)."""

    knobs = {"api_1": True}
    on_delete = {}


def test_api_1_target_skips_the_files_checks_and_expects_deletions_skipped(pytester: pytest.Pytester) -> None:
    pytester.syspathinsert(Path(__file__).parent)
    pytester.makepyfile(test_api1="""
        from conformance_fixtures.foldertarget import FolderTargetSuite

        class TestApi1(FolderTargetSuite):
            knobs = {"api_1": True}
    """)
    result = pytester.runpytest_inprocess("-k", "every_file or files_option or deletion", "-p", "no:cacheprovider",
                                          "-rs")
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines(["*declares hook API 1*"])


def test_a_deletion_check_without_declared_outcomes_fails_with_how_to(pytester: pytest.Pytester) -> None:
    pytester.syspathinsert(Path(__file__).parent)
    pytester.makepyfile(test_undeclared="""
        from conformance_fixtures.foldertarget import FolderTargetSuite

        class TestUndeclared(FolderTargetSuite):
            on_delete = {}
    """)
    result = pytester.runpytest_inprocess("-k", "deletion", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*declare what a deletion yields: on_delete = *"])


BROKEN = [
    ("write_blind", "test_repush_after_lost_ledger_writes_nothing", "copies of its PDF"),
    ("write_blind", "test_crash_between_write_and_ledger_leaves_no_duplicate", "copies of its PDF"),
    ("overwrite_collisions", "test_colliding_names_both_land_distinct", "copies of its PDF"),
    ("read_whole_file", "test_large_file_streams_with_bounded_memory", "stream it in chunks"),
    ("hide_failures", "test_partial_failure_is_reported_per_document", "should make the run partial"),
    ("only_main_file", "test_every_file_lands_exactly_once", "*the target holds 0 copies of its *"),
    ("ignore_files_option", "test_narrower_files_option_is_honoured_then_back_filled", "*was not asked for"),
    ("fake_deletes", "test_deletion_follows_the_declared_policy", "*reported deleted, but the target still holds*"),
]


@pytest.mark.parametrize(("knob", "check", "says"), BROKEN, ids=[f"{b[0]}-{b[1][5:]}" for b in BROKEN])
def test_each_check_fails_on_a_target_with_that_bug(pytester: pytest.Pytester, knob: str, check: str,
                                                    says: str) -> None:
    pytester.syspathinsert(Path(__file__).parent)
    pytester.makepyfile(test_broken=f"""
        from conformance_fixtures.foldertarget import FolderTargetSuite

        class TestBroken(FolderTargetSuite):
            knobs = {{{knob!r}: True}}
    """)
    result = pytester.runpytest_inprocess("-k", check, "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*{says}*"])
