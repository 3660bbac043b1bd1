"""Worker processes for the cross-process limit tests (``test_shared_limits``, ``test_refresh_across_processes``).

    python limits_driver.py refresh ACCOUNT GO_FILE        # one Billit call; its token is expired
    python limits_driver.py requests ACCOUNT GO_FILE N      # N Billit calls from 12 threads
    python limits_driver.py hold KEY SLOTS                  # take SLOTS budget slots, print "held", sleep
    python limits_driver.py lock NAME                       # take the named lock, print "held", sleep

The home and the state come from the environment (``INVOICESYNC_HOME``, ``INVOICESYNC_STATE_URL``,
``INVOICESYNC_SHARED_BUDGETS``), as for any invoicesync process. The first two wait until GO_FILE
exists, so that the processes start their work at once, and print one JSON line.
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

from invoicesync.http import SharedBudget
from invoicesync.workspace import Workspace
from invoicesync_billit.client import BillitClient


def _wait_for(go: Path) -> None:
    deadline = time.monotonic() + 60
    while not go.exists():
        if time.monotonic() > deadline:
            raise SystemExit("the test never said go")
        time.sleep(0.005)


def main() -> None:
    command, *args = sys.argv[1:]
    with Workspace.open() as workspace:
        if command == "hold":
            key, slots = args[0], int(args[1])
            budget = SharedBudget(workspace.state.budget_ledger(), key, concurrency=slots)
            with ExitStack() as stack:
                for _ in range(slots):
                    stack.enter_context(budget.slot())
                print("held", flush=True)
                time.sleep(600)  # until killed
            return
        if command == "lock":
            with workspace.state.named_lock(args[0]):
                print("held", flush=True)
                time.sleep(600)  # until killed
            return
        account = workspace.account(args[0])
        ctx = workspace.context(account)
        client = BillitClient(ctx, workspace.settings_for(account))
        _wait_for(Path(args[1]))
        if command == "refresh":
            companies = client.account_information()["Companies"]
            print(json.dumps({"companies": len(companies)}), flush=True)
        elif command == "requests":
            with ThreadPoolExecutor(12) as pool:
                answers = list(pool.map(lambda _: client.account_information(), range(int(args[2]))))
            print(json.dumps({"answers": len(answers)}), flush=True)
        ctx.close()


if __name__ == "__main__":
    main()
