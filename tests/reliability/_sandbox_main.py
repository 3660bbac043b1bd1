"""Run one plugin's sandbox in a process of its own, for the reliability suite.

Like ``invoicesync sandbox NAME`` (the plugin's own ``sandbox`` hook, served by core's kit), but
it takes any sandbox option, prints one JSON line (URL, account settings and the demo secrets,
which only this process can issue) and adds admin routes: ``GET /__sandbox__/reliability/store``
(a dump of what the sandbox itself holds, never what invoicesync thinks it wrote), ``.../expire``
(expire every access token now), ``.../faults`` (add many fault rules; count the fired ones).
It stops when its stdin closes.

    python _sandbox_main.py PLUGIN HOME OPTIONS_JSON
"""

from __future__ import annotations

import hashlib
import json
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from invoicesync.sandbox import Request, Response, SandboxApp, serve


def _sha256_file(path: Path) -> str | None:
    if not path.exists():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _dropbox_store(app: Any) -> dict[str, Any]:
    namespace = app.namespace
    with namespace.lock:
        entries = list(namespace.entries.values())
    files = [{"path": e.display, "size": e.size, "sha256": _sha256_file(e.blob) if e.blob else None}
             for e in entries if e.kind == "file"]
    return {"files": files, "folders": [e.display for e in entries if e.kind == "folder"]}


def _gdrive_store(app: Any) -> dict[str, Any]:
    store = app.store
    with store.lock:
        files = [f for f in store.files.values() if not f.trashed]
    folder_mime = "application/vnd.google-apps.folder"
    return {
        "files": [{"id": f.id, "name": f.name, "parents": list(f.parents), "size": f.size,
                   "sha256": _sha256_file(store.content_path(f.id)) if f.size is not None else None}
                  for f in files if f.mime_type != folder_mime],
        "folders": [{"id": f.id, "name": f.name, "parents": list(f.parents)}
                    for f in files if f.mime_type == folder_mime],
    }


def _bc_store(app: Any) -> dict[str, Any]:
    companies = []
    with app.lock:
        for company in app.companies.values():
            drafts = []
            for entity_set, documents in company.documents.items():
                for document in documents.values():
                    invoice = entity_set == "purchaseInvoices"
                    number_field = "vendorInvoiceNumber" if invoice else "vendorCreditMemoNumber"
                    drafts.append({"id": document["id"], "set": entity_set, "vendor": document["vendorName"],
                                   "vendor_number": document[number_field], "status": document["status"],
                                   "lines": len(company.lines.get(document["id"], []))})
            attachments = [{"id": a["id"], "parent": a["parentId"], "name": a["fileName"], "size": a["byteSize"],
                            "sha256": _sha256_file(app.content.path(a["id"]))}
                           for entity in company.attachments.values() for a in entity.values()]
            vendors = [f"{v['displayName']} (VAT {v['taxRegistrationNumber'] or '-'})"
                       for v in company.vendors.values()]
            companies.append({"name": company.name, "drafts": drafts, "attachments": attachments,
                              "vendors": vendors, "posted": company.posted})
    return {"companies": companies}


def _token_expiry(app: Any) -> Any:
    """The sandbox's own "every access token issued so far is expired now" helper, if it has one."""
    for owner, name in ((app, "expire_access_tokens"), (getattr(app, "oauth", None), "expire_access_tokens"),
                        (getattr(app, "oauth", None), "expire_all"), (getattr(app, "entra", None), "revoke_all")):
        if owner is not None and callable(getattr(owner, name, None)):
            return getattr(owner, name)
    return None


def _fault_counts(app: SandboxApp) -> dict[str, Any]:
    """How many faults fired, by kind, and how many service requests came in (admin ones aside)."""
    fired: dict[str, int] = {}
    with app.lock:
        for fault in app.faults:
            times = fault.seen - fault.after if fault.times is None else min(fault.times, fault.seen - fault.after)
            kind = fault.action if fault.action != "status" else str(fault.status)
            fired[kind] = fired.get(kind, 0) + max(0, times)
        answered = sum(1 for _, path, _ in app.requests if not path.startswith("/__sandbox__/"))
    drops = fired.get("drop", 0) + fired.get("drop_after", 0)
    return {"fired": fired, "requests": answered + drops}


DUMPERS = {"dropbox": _dropbox_store, "gdrive": _gdrive_store, "dynamics365": _bc_store}


def _plugin_sandbox(plugin: str, options: dict[str, Any]) -> SandboxApp:
    """The plugin's own ``sandbox`` hook, found through its entry point: importing just that
    plugin keeps the start-up of a dozen sandbox processes short."""
    for group in ("invoicesync.sources", "invoicesync.targets"):
        for entry in entry_points(group=group, name=plugin):
            app: SandboxApp = entry.load().sandbox(options)
            return app
    raise SystemExit(f"no plugin called {plugin!r} is installed")


def main() -> None:
    plugin, home, raw_options = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    options: dict[str, Any] = json.loads(raw_options)
    app = _plugin_sandbox(plugin, options)
    dumper = DUMPERS.get(plugin)
    if dumper is not None:
        app.route("GET", r"/__sandbox__/reliability/store", lambda request: Response.json(dumper(app)))
    expire = _token_expiry(app)

    def expire_tokens(request: Request) -> Response:
        if expire is not None:
            expire()
        return Response.json({"expired": expire is not None})

    app.route("POST", r"/__sandbox__/reliability/expire", expire_tokens)
    app.route("GET", r"/__sandbox__/reliability/faults", lambda request: Response.json(_fault_counts(app)))

    def add_faults(request: Request) -> Response:  # many rules in one call (a storm has hundreds)
        for rule in request.json():
            app.add_fault(rule)
        return Response.json({"added": len(request.json())})

    app.route("POST", r"/__sandbox__/reliability/faults", add_faults)
    running = serve(app, tls=getattr(app, "tls", False), tls_dir=home / "sandbox-ca" / plugin)
    if hasattr(app, "ca_file") and running.ca_file:
        app.ca_file = str(running.ca_file)
    settings = dict(app.account_settings(running.url))
    if running.ca_file:  # as accounts.sandbox_settings does for plugins whose settings take a CA
        settings.setdefault("ca_bundle", str(running.ca_file))
    print(json.dumps({"url": running.url, "settings": settings, "secrets": app.account_secrets()}), flush=True)
    try:
        sys.stdin.read()  # the suite closes our stdin (or kills us) to stop the sandbox
    finally:
        running.stop()


if __name__ == "__main__":
    main()
