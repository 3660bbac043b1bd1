"""Suite-wide rules: a skip is a failure unless it is one of the few expected ones below.

A test that skips because something is missing (an SDK, a module of core that failed to import)
has not run, so the run must not pass as if it had. Expected skips are listed with the reason
they give; anything else skipping fails the session, with the list of what skipped and why.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

# httpx imports httpcore lazily and caches httpcore's exception classes on first use. A pytester
# in-process run drops every module first imported inside it, so a later import makes new classes
# that httpx no longer maps (a dropped connection then escapes as httpcore.RemoteProtocolError instead
# of OutcomeUnknown). Importing it here, before any such run, keeps one httpcore for the session.
import httpcore  # noqa: F401
import pytest

AS_ROOT = os.geteuid() == 0

#: (test id pattern, skip reason pattern, expected here?): the skips this suite expects.
EXPECTED_SKIPS = [
    # Local-folder targets have no HTTP write to drop; the conformance kit says so and checks crash_ledger.
    (r"(^|/)tests/test_conformance_target\.py::", r"^crash_wire: no HTTP write endpoint", True),
    # A target written for hook API 1 is handed no PushRequest.files: the files checks do not apply.
    (r"(^|/)tests/test_conformance_target\.py::TestReferenceFolderOnApi1::", r"^(every_file|files_option): the plugin "
     r"declares hook API 1", True),
    # Mounting needs root: a developer's run skips these, CI's (as root) must run them.
    (r"(^|/)tests/test_cli_misuse\.py::.*\[mount\]", r"^needs root and bind mounts", not AS_ROOT),
    (r"(^|/)tests/test_runner\.py::", r"^needs root to mount a small tmpfs", not AS_ROOT),
    # As root the test drops to nobody, who must be able to read the checkout: that depends on
    # where it was cloned (a folder under a 0700 home is not), not on the code.
    (r"(^|/)tests/test_cli_misuse\.py::.*\[mode\]", r"^as root, needs setpriv and a venv that nobody", True),
]

_unexpected: list[str] = []


def _expected(nodeid: str, reason: str) -> bool:
    return any(here and re.search(test, nodeid) and re.search(why, reason) for test, why, here in EXPECTED_SKIPS)


@pytest.hookimpl(trylast=True)
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # Runs in the main process under xdist too: worker reports are replayed there.
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
    reason = reason.removeprefix("Skipped: ")
    if not _expected(report.nodeid, reason):
        _unexpected.append(f"{report.nodeid}: {reason}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _unexpected and not hasattr(session.config, "workerinput") and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _unexpected:
        terminalreporter.section("unexpected skips (see EXPECTED_SKIPS in conftest.py)", red=True)
        for line in _unexpected:
            terminalreporter.line(line, red=True)


# -- S3 for the blob store tests (core's and the connectors'): moto's server on loopback ------------


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on a free loopback port, for the whole session. Without moto[server]
    installed the tests fail (never skip): it is in the dev dependencies (not in a shipped extra,
    so these fixtures live here rather than in invoicesync's pytest plugin)."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # not a line per request in every test's log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_blob_url(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """``s3://<a fresh bucket>/blobs`` on the moto server, reached through the standard AWS
    environment variables (which subprocesses inherit); the bucket is emptied and removed after."""
    import boto3

    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test-access-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret-key")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))  # never the developer's own
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    client = boto3.client("s3")
    bucket = f"blobs-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=bucket)
    yield f"s3://{bucket}/blobs"
    for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=item["Key"])
    client.delete_bucket(Bucket=bucket)
