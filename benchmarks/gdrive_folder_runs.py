"""Google Drive: requests of later runs that add a few documents to a folder that already holds many.

Run 0 writes ``--files`` documents into one folder (``invoicesync/Acme BV/2026/purchase``); then
``--runs`` later runs each add ``--new`` documents to it. Each run is one ``push_documents`` call
with its own Context (as the runner has one per run), against the Drive sandbox on loopback, and
the requests each run sent are counted by endpoint. Before the changes feed, every later run
listed the whole folder again (``ceil(files / page_size)`` ``files.list`` calls); with it, a
later run asks ``changes.list`` what happened since the last run instead (one call per 1,000
changes: the first later run also reads back run 0's own writes).

    .venv/bin/python benchmarks/gdrive_folder_runs.py --files 2000 --new 10 --runs 2

Counts, not times: they do not depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
from collections import Counter
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--new", type=int, default=10)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()

    import os

    from invoicesync import (
        Account,
        AccountDirection,
        Company,
        Direction,
        Document,
        FileRole,
        Party,
        PluginKind,
        PushRequest,
    )
    from invoicesync.plugins import Plugins
    from invoicesync.sandbox import serve
    from invoicesync.workspace import Workspace
    from invoicesync_gdrive import plugin as gdrive_plugin
    from invoicesync_gdrive.sandbox import DriveSandbox

    with tempfile.TemporaryDirectory(prefix="gdrive-folder-runs-") as tmp:
        home = Path(tmp) / "home"
        os.environ.update(INVOICESYNC_HOME=str(home), INVOICESYNC_SECRETS="file")
        app = DriveSandbox()
        server = serve(app)
        plugins = Plugins.from_objects({"gdrive": (PluginKind.TARGET, gdrive_plugin)})
        workspace = Workspace.open(home, plugins=plugins)
        try:
            account = Account(name="drive", plugin="gdrive", direction=AccountDirection.EXPORT,
                              settings=app.account_settings(server.url))
            secrets = workspace.secrets(account.name)
            for key, value in app.account_secrets().items():
                secrets.set(key, value)
            company = Company(id="c1", name="Acme BV")

            def document(n: int) -> Document:
                blob = workspace.blobs.put(iter([f"%PDF-1.4 invoice {n}\n".encode()]), name=f"INV-{n}.pdf",
                                           media_type="application/pdf", role=FileRole.PDF)
                return Document(id=Document.make_id("billit", "acme", company.id, str(n)), source="billit",
                                account="acme", company=company, source_id=str(n), direction=Direction.PURCHASE,
                                number=f"INV-{n:05d}", issue_date=date(2026, 1 + n % 12, 1),
                                amount_incl_vat=Decimal("121.00"), counterparty=Party(name="Supplier NV"),
                                files=[blob])

            def run(numbers: range) -> Counter[str]:
                with app.lock:
                    before = len(app.requests)
                state = workspace.state
                requests = [PushRequest(document=d, previous=state.get_delivery(d.id, account.name), files=d.files)
                            for d in map(document, numbers)]
                ctx = workspace.context(account)
                try:
                    for delivery in gdrive_plugin.push_documents(account=account, requests=requests, ctx=ctx):
                        state.record_delivery(delivery)
                        assert delivery.status.value == "delivered", delivery.message
                finally:
                    ctx.close()
                with app.lock:
                    sent = list(app.requests[before:])
                return Counter(_endpoint(method, path) for method, path, _ in sent)

            results: dict[str, Any] = {"files": args.files, "new_per_run": args.new}
            results["run 0"] = dict(run(range(args.files)))
            for k in range(1, args.runs + 1):
                start = args.files + (k - 1) * args.new
                counts = run(range(start, start + args.new))
                results[f"run {k}"] = {**dict(counts), "total": sum(counts.values())}
            print(json.dumps(results, indent=1))
        finally:
            workspace.close()
            server.stop()
            app.store.close()


def _endpoint(method: str, path: str) -> str:
    path = re.sub(r"/files/[^/]+$", "/files/{id}", path)
    return f"{method} {path}"


if __name__ == "__main__":
    main()
