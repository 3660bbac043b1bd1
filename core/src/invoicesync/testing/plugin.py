"""The pytest plugin (entry point ``pytest11``): fixtures for invoicesync and connector tests."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ..plugins import Plugins
from ..sandbox import RunningSandbox, SandboxApp, serve
from ..workspace import Workspace
from .memory import MemorySource, MemoryTarget

if TYPE_CHECKING:
    from click.testing import Result


@pytest.fixture
def invoicesync_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated home folder; secrets go to a 0600 file there, never the developer's keyring."""
    home = tmp_path / "home"
    monkeypatch.setenv("INVOICESYNC_HOME", str(home))
    monkeypatch.setenv("INVOICESYNC_SECRETS", "file")
    monkeypatch.delenv("INVOICESYNC_CONFIG", raising=False)
    monkeypatch.delenv("INVOICESYNC_STATE_URL", raising=False)  # the home's own state.db
    monkeypatch.delenv("INVOICESYNC_BLOB_URL", raising=False)  # and its own blobs/
    monkeypatch.chdir(tmp_path)
    return home


@pytest.fixture
def workspace_factory(invoicesync_home: Path) -> Iterator[Callable[..., Workspace]]:
    """``workspace_factory(plugins=None, **kwargs)``: open the isolated home; closed at teardown."""
    opened: list[Workspace] = []

    def make(plugins: Plugins | None = None, **kwargs: Any) -> Workspace:
        workspace = Workspace.open(invoicesync_home, plugins=plugins, **kwargs)
        opened.append(workspace)
        return workspace

    yield make
    for workspace in opened:
        workspace.close()


@pytest.fixture
def serve_sandbox() -> Iterator[Callable[..., RunningSandbox]]:
    """``serve_sandbox(app, tls=False)``: run a sandbox on loopback for the test's duration."""
    running: list[RunningSandbox] = []

    def start(app: SandboxApp, **kwargs: Any) -> RunningSandbox:
        server = serve(app, **kwargs)
        running.append(server)
        return server

    yield start
    for server in running:
        server.stop()


@pytest.fixture
def invoicesync_cli(invoicesync_home: Path) -> Callable[..., Result]:
    """``invoicesync_cli(*args, plugins=None, input=None)``: run the ``invoicesync`` command on the
    isolated home and return click's ``Result``. With ``plugins`` (e.g. ``Plugins.from_objects``),
    the command sees those instead of the installed ones."""
    from click.testing import CliRunner

    from .. import plugins as plugins_module
    from ..cli import cli

    def run(*args: object, plugins: Plugins | None = None, input: str | None = None) -> Result:
        previous = plugins_module._installed
        if plugins is not None:
            plugins_module._installed = plugins
        try:
            return CliRunner().invoke(cli, [str(a) for a in args], input=input, catch_exceptions=False)
        finally:
            plugins_module._installed = previous

    return run


@pytest.fixture
def memory_source() -> MemorySource:
    """An in-memory source with five documents (register it with ``Plugins.from_objects``)."""
    return MemorySource(5)


@pytest.fixture
def memory_target() -> MemoryTarget:
    """An in-memory target that counts its writes."""
    return MemoryTarget()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on a free loopback port, for the whole session. Without moto[server]
    installed the tests fail (never skip): it is in the dev dependencies."""
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
