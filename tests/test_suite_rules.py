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


def test_an_in_process_pytest_run_does_not_leave_httpx_with_stale_httpcore_classes(pytester: pytest.Pytester) -> None:
    """Under -n 2, eleven dropped-connection tests failed together on one worker: its first HTTP
    request had happened inside a pytester in-process run, which dropped httpcore afterwards."""
    pytester.makeini("[pytest]\n")
    pytester.makeconftest(RULES + '\npytest_plugins = ["pytester"]\n')
    pytester.makepyfile(test_order="""
        import httpx
        import pytest

        def closed_port():
            try:
                httpx.get("http://127.0.0.1:9/", timeout=2)
            except httpx.HTTPError as exc:
                return type(exc)

        def test_first_request_inside_an_inprocess_run(pytester):
            inner = "import httpx\\n\\ndef test_x():\\n    httpx.get('http://127.0.0.1:9/', timeout=2)\\n"
            pytester.makepyfile(test_inner=inner)
            pytester.runpytest_inprocess("-p", "no:cacheprovider")

        def test_a_later_request_still_raises_httpx_errors():
            assert closed_port() is httpx.ConnectError
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
