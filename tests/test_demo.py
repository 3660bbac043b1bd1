"""`make demo` end to end: the bundled sandboxes, every installed target, a local folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from invoicesync import ConfigError
from invoicesync.demo import run_demo
from invoicesync.pipeline import EXIT_OK
from invoicesync.plugins import Plugins


def test_the_demo_syncs_the_billit_sandbox_to_every_target(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVOICESYNC_SECRETS", "file")
    plugins = Plugins.discover()
    targets = {p.name for p in plugins.loaded.values() if p.kind.value == "target" and "sandbox" in p.hooks}
    result = run_demo(tmp_path / "demo", documents=4, plugins=plugins)
    report = result.report
    assert report.exit_code == EXIT_OK, report.as_dict()
    assert result.skipped == {}
    assert set(result.sandboxes) == {"billit", *targets}
    imported = report.imported["new"]
    assert imported > 0
    for target in targets | {"localfs"}:
        account = "demo-folder" if target == "localfs" else f"demo-{target}"
        counts = report.exported[account]
        assert counts["delivered"] + counts["skipped"] == imported, (account, counts)
    pdfs = list((tmp_path / "demo" / "invoices").rglob("*.pdf"))
    assert pdfs and all(p.read_bytes().startswith(b"%PDF") for p in pdfs)


def test_the_demo_never_deletes_a_folder_it_did_not_make(tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("years of work")
    with pytest.raises(ConfigError, match="was not made by the demo"):
        run_demo(precious, documents=1, plugins=Plugins.from_objects({}))
    assert (precious / "thesis.txt").exists()
