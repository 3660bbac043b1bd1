"""The suite-wide rules in the root conftest.py: an unexpected skip fails the run."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]
RULES = (Path(__file__).parent.parent / "conftest.py").read_text()


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_an_unexpected_skip_fails_the_run_and_says_why(pytester: pytest.Pytester, workers: list[str]) -> None:
    pytester.makeini("[pytest]\n")  # its own rootdir, wherever pytest's temporary folders are
    pytester.makeconftest(RULES)
    pytester.makepyfile(test_sdk="""
        import pytest

        def test_uses_the_sdk():
            pytest.importorskip("no_such_sdk_module")

        def test_runs():
            pass
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *workers)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*unexpected skips*", "*test_sdk.py::test_uses_the_sdk*no_such_sdk_module*"])
    result.assert_outcomes(passed=1, skipped=1)


def test_an_expected_skip_passes(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\n")  # its own rootdir, wherever pytest's temporary folders are
    pytester.makeconftest(RULES)
    (pytester.path / "tests").mkdir()
    (pytester.path / "tests" / "test_conformance_target.py").write_text(
        "import pytest\n\n"
        "def test_wire():\n"
        "    pytest.skip('crash_wire: no HTTP write endpoint (write_path) to drop')\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(skipped=1)
