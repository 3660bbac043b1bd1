"""A task finds its account as ``Workspace.account`` would — the config's first, then the state's —
without reading every account of the state."""

from __future__ import annotations

from pathlib import Path

import pytest
from invoicesync.accounts import connect
from invoicesync.context import NonInteractiveUI
from invoicesync.distributed._tasks import task_account
from invoicesync.errors import ConfigError
from invoicesync.models import Account, AccountDirection
from invoicesync.workspace import Workspace


def test_a_task_finds_its_account_where_workspace_account_does(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "invoicesync.toml").write_text(f'[accounts.archive]\nplugin = "localfs"\n'
                                           f'[accounts.archive.settings]\nroot = "{tmp_path / "config"}"\n')
    with Workspace.open(home) as workspace:
        connect(workspace, "localfs", ui=NonInteractiveUI(), name="folder", settings={"root": str(tmp_path / "folder")})
        # One of the same name in the state too (connected before the file declared it): the file's wins.
        workspace.state.save_account(Account(name="archive", plugin="localfs", direction=AccountDirection.EXPORT,
                                             settings={"root": str(tmp_path / "archive")}))
        read_all = workspace.state.list_accounts
        workspace.state.list_accounts = lambda: pytest.fail("every account read")  # type: ignore[method-assign]
        for name in ("archive", "folder"):
            assert task_account(workspace, name).settings["root"] == str(tmp_path / ("config" if name == "archive"
                                                                                     else name))
        workspace.state.list_accounts = read_all  # type: ignore[method-assign]
        assert task_account(workspace, "folder") == workspace.account("folder")
        with pytest.raises(ConfigError, match="no account called 'gone'"):
            task_account(workspace, "gone")
