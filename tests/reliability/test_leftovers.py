"""Kill windows that leave temporary files behind, hit on purpose: the probe SIGKILLs the real
``sync`` at the very instant it is about to rename a fully written temporary file into place,
first in the blob store (fetch), then in the local folder (push). A clean run afterwards must
deliver everything and leave no temporary file anywhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from ._audit import blob_temp_holding, folder_holding
from ._runner import run_plain, run_sync
from .conftest import Reliability


@pytest.fixture(scope="module")
def killed_at_renames(reliability: Reliability) -> tuple[Path, Path]:
    home = reliability.local_home("leftovers")
    folder = reliability.world.folder(home)
    for die_at in ("fetch blob rename:1", "push localfs rename:1"):
        killed = run_sync(home, folder, reliability.world.ports(), die_at=die_at)
        assert killed.exit_code == -9, f"the run was not killed at {die_at!r}: {dict(killed.events)}"
    clean = run_plain(home)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    return home, folder


def test_a_kill_before_the_local_rename_leaves_no_part_file(killed_at_renames: tuple[Path, Path]) -> None:
    assert folder_holding(killed_at_renames[1]).leftovers == []


def test_a_kill_before_the_blob_rename_leaves_no_temp_file(killed_at_renames: tuple[Path, Path]) -> None:
    assert blob_temp_holding(killed_at_renames[0]).leftovers == []
