"""``invoicesync sync`` end to end with the blobs elsewhere (``blob_url``): every file reaches a
localfs folder with its exact bytes, a large one included, and nothing lands in the home's blobs/."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from invoicesync.accounts import connect
from invoicesync.cli import cli
from invoicesync.context import NonInteractiveUI
from invoicesync.pipeline import EXIT_FATAL, EXIT_OK, run_sync
from invoicesync.plugins import Plugins
from invoicesync.state import DocumentFilter, HomeBlobStore, open_blob_store
from invoicesync.testing import MemorySource, MemoryTarget
from invoicesync.testing.blobs import MiB, inline, pattern, sha_of, visible
from invoicesync.workspace import Workspace

LARGE = b"".join(pattern(20 * MiB + 7))  # more than one S3 part


def test_sync_with_the_blobs_elsewhere_delivers_every_file_with_its_bytes(
        blob_url: str | None, workspace_factory: Callable[..., Workspace], cli_plugins: Plugins,
        memory_plugins: tuple[Plugins, MemorySource, MemoryTarget], invoicesync_home: Path, tmp_path: Path) -> None:
    _, source, _ = memory_plugins
    source.records[3].attachments = [("terms.pdf", "application/pdf", b"%PDF-1.4 terms\n")]
    source.records[5].ubl = b"<?xml version='1.0'?><Invoice/>"
    source.records[7].attachments = [("scan.pdf", "application/pdf", LARGE)]
    source.records[9].pdf = source.records[10].pdf  # the same PDF twice: one blob
    if blob_url is not None:
        (tmp_path / "invoicesync.toml").write_text(f'blob_url = "{blob_url}"\n')  # ./invoicesync.toml
    workspace = workspace_factory(plugins=memory_plugins[0])
    connect(workspace, "memory", ui=NonInteractiveUI())
    out = tmp_path / "out"
    connect(workspace, "localfs", ui=NonInteractiveUI(), name="folder",
            settings={"root": str(out), "write_data": False})

    report = run_sync(workspace, accounts=["memory", "folder"])

    assert report.exit_code == EXIT_OK and report.exported["folder"] == {"delivered": 25}
    contents = [r.pdf for r in source.records] + [r.ubl for r in source.records] + [
        a[2] for r in source.records for a in r.attachments]
    expected = Counter(hashlib.sha256(c).hexdigest() for c in contents if c is not None)
    delivered = Counter(hashlib.sha256(p.read_bytes()).hexdigest() for p in out.rglob("*") if p.is_file())
    assert delivered == expected and sum(delivered.values()) == 28
    assert visible(workspace.blobs) == sorted(expected)
    assert (invoicesync_home / "blobs").exists() == (blob_url is None)

    document = next(d for d in workspace.state.find_documents(DocumentFilter()) if d.number == "INV-0007")
    result = CliRunner().invoke(cli, ["documents", "open", document.id, "--print-path"], obj=cli_plugins)
    assert result.exit_code == 0, result.output
    assert Path(result.stdout.strip()).read_bytes() == source.records[7].pdf


def test_a_blob_store_that_cannot_be_used_fails_the_run_in_one_line_without_secrets(
        s3_blob_url: str, cli_plugins: Plugins, invoicesync_home: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVOICESYNC_BLOB_URL", "s3://no-such-bucket-here/blobs")
    assert CliRunner().invoke(cli, ["connect", "memory"], obj=cli_plugins).exit_code == 0
    result = CliRunner().invoke(cli, ["sync"], obj=cli_plugins)
    assert result.exit_code == EXIT_FATAL, result.output
    line = next(line for line in result.output.splitlines() if "S3 blob store" in line)
    assert "s3://no-such-bucket-here/blobs/" in line and "NoSuchBucket" in line
    assert "test-secret-key" not in result.output


@pytest.mark.parametrize("destination", ["shared", "s3"])
def test_copy_blobs_moves_a_homes_blobs_into_the_new_store(
        destination: str, request: pytest.FixtureRequest, cli_plugins: Plugins,
        memory_plugins: tuple[Plugins, MemorySource, MemoryTarget], invoicesync_home: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    url = (tmp_path / "nas").as_uri() if destination == "shared" else request.getfixturevalue("s3_blob_url")
    memory_plugins[1].records[2].attachments = [("scan.pdf", "application/pdf", LARGE)]
    assert CliRunner().invoke(cli, ["connect", "memory"], obj=cli_plugins).exit_code == 0
    assert CliRunner().invoke(cli, ["sync"], obj=cli_plugins).exit_code == EXIT_OK
    home_store = open_blob_store(invoicesync_home, None)
    blobs = sorted(home_store.shas())
    assert len(blobs) == 26
    assert isinstance(home_store, HomeBlobStore) and len(inline(home_store)) == 25  # all but the large scan

    result = CliRunner().invoke(cli, ["state", "copy-blobs", "--to", url], obj=cli_plugins)
    assert result.exit_code == 0, result.output
    assert "Copied 26 blob(s) from " in result.stdout and "(0 already there)" in result.stdout
    again = CliRunner().invoke(cli, ["state", "copy-blobs", "--to", url, "--json"], obj=cli_plugins)
    assert json.loads(again.stdout)["copied"] == 0 and json.loads(again.stdout)["present"] == 26
    target = open_blob_store(invoicesync_home, url)
    assert visible(target) == sorted(target.shas()) == blobs
    assert all(sha_of(target.iter_chunks(sha)) == sha for sha in blobs)

    monkeypatch.setenv("INVOICESYNC_BLOB_URL", url)
    result = CliRunner().invoke(cli, ["state", "copy-blobs", "--to", url], obj=cli_plugins)
    assert result.exit_code != 0 and "is the store the blobs are in already" in result.output
