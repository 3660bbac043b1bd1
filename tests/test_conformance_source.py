"""The source conformance suite: a correct reference source passes it, and each check fails on a
reference source with the one bug that check is about."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the reference connectors in conformance_fixtures/

from conformance_fixtures.refsource import RefSourceSuite

pytest_plugins = ["pytester"]


class TestReferenceSource(RefSourceSuite):
    """The whole suite, on a source that does everything right."""


BROKEN = [
    ("repeat_boundary", "test_paging_has_no_gaps_and_no_repeats", "more than once"),
    ("backwards_cursor", "test_cursor_never_goes_backwards", "moved backwards"),
    ("ignore_cursor", "test_resumes_from_saved_state", "did not resume"),
    ("ignore_retry_after", "test_honours_retry_after_on_429", "Retry-After"),
    ("no_refresh", "test_refreshes_after_401_mid_sync", "instead of refreshing"),
    ("forget_rotated_token", "test_rotated_refresh_token_is_stored_before_use", "before it was stored"),
    ("lenient_amounts", "test_malformed_payload_fails_only_that_document", "partial"),
]


@pytest.mark.parametrize(("knob", "check", "says"), BROKEN, ids=[b[0] for b in BROKEN])
def test_each_check_fails_on_a_source_with_that_bug(pytester: pytest.Pytester, knob: str, check: str,
                                                    says: str) -> None:
    pytester.syspathinsert(Path(__file__).parent)
    pytester.makepyfile(test_broken=f"""
        from conformance_fixtures.refsource import RefSourceSuite

        class TestBroken(RefSourceSuite):
            knobs = {{{knob!r}: True}}
    """)
    result = pytester.runpytest_inprocess("-k", check, "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*{says}*"])
