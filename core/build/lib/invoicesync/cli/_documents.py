"""``documents``: the library, with each document's delivery status per target."""

from __future__ import annotations

import itertools
import shutil
from datetime import date
from typing import Any

import click

from ..errors import ConfigError
from ..models import Document
from ..state import DocumentFilter
from ..workspace import Workspace
from ._common import State, handle_errors, json_option, pass_state, print_json

STATUSES = ("delivered", "unchanged", "pending", "failed", "skipped", "undelivered")


def _targets(workspace: Workspace) -> list[str]:
    return [a.name for a in workspace.accounts() if a.direction.value == "export"]


def _row(workspace: Workspace, document: Document, targets: list[str]) -> dict[str, Any]:
    deliveries = {d.target: d for d in workspace.state.deliveries_for(document.id)}
    return {
        "id": document.id,
        "number": document.number,
        "kind": document.kind.value,
        "direction": document.direction.value,
        "company": document.company.name,
        "counterparty": document.counterparty.name,
        "issue_date": document.issue_date.isoformat() if document.issue_date else None,
        "total": str(document.amount_incl_vat) if document.amount_incl_vat is not None else None,
        "currency": document.currency,
        "pdf": document.pdf is not None,
        "deleted": document.deleted,
        "deliveries": {
            t: (deliveries[t].status.value if t in deliveries else "undelivered") for t in targets
        },
    }


@click.group(invoke_without_command=True)
@click.option("--account", help="Only documents imported by this account.")
@click.option("--company", help="Only this company id.")
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), help="Issued on or after (YYYY-MM-DD).")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), help="Issued on or before (YYYY-MM-DD).")
@click.option("--direction", type=click.Choice(["sales", "purchase"]))
@click.option("--kind", help="invoice, credit_note, …")
@click.option("--status", type=click.Choice(STATUSES), help="Only documents with this delivery status at some target.")
@click.option("--limit", type=int, default=None, help="Show at most this many.")
@json_option
@click.pass_context
@handle_errors
def documents(ctx: click.Context, account: str | None, company: str | None, since: Any, until: Any,
              direction: str | None, kind: str | None, status: str | None, limit: int | None, as_json: bool) -> None:
    """The Documents view: what was imported, and where each document was delivered."""
    if ctx.invoked_subcommand is not None:
        return
    workspace = ctx.find_object(State).workspace()  # type: ignore[union-attr]
    filters = DocumentFilter(account=account, company=company, direction=direction, kind=kind,
                             since=_day(since), until=_day(until))
    targets = _targets(workspace)
    rows = (_row(workspace, d, targets) for d in workspace.state.find_documents(filters))
    if status:
        rows = (r for r in rows if status in r["deliveries"].values())
    selected = list(itertools.islice(rows, limit)) if limit else list(rows)
    if as_json:
        print_json(selected)
        return
    if not selected:
        click.echo("No documents. Run `invoicesync sync` to import them (the first sync can take a while).")
        return
    for row in selected:
        flags = "" if row["pdf"] else " [no PDF]"
        flags += " [deleted]" if row["deleted"] else ""
        status_text = " ".join(f"{t}:{s}" for t, s in row["deliveries"].items())
        click.echo(f"{row['id']}  {row['issue_date'] or '-':<10} {row['direction']:<8} {row['kind']:<11} "
                   f"{row['number']:<14} {(row['counterparty'] or '')[:24]:<24} {row['total'] or '':>12} "
                   f"{row['currency']}  {status_text}{flags}")
    click.echo(f"{len(selected)} document(s). `invoicesync documents show ID` for details.", err=True)


def _day(value: Any) -> date | None:
    return value.date() if value else None


def _get(workspace: Workspace, document_id: str) -> Document:
    document = workspace.state.get_document(document_id)
    if document is None:
        raise ConfigError(f"no document {document_id!r}; `invoicesync documents` lists the ids")
    return document


@documents.command()
@click.argument("document_id")
@json_option
@pass_state
@handle_errors
def show(state: State, document_id: str, as_json: bool) -> None:
    """Show one document: its data, files and delivery per target."""
    workspace = state.workspace()
    document = _get(workspace, document_id)
    deliveries = [d.model_dump(mode="json") for d in workspace.state.deliveries_for(document.id)]
    data = {**document.model_dump(mode="json", exclude={"raw"}), "deliveries": deliveries}
    if as_json:
        print_json(data)
        return
    for key in ("id", "kind", "direction", "number", "issue_date", "due_date", "currency",
                "amount_excl_vat", "amount_vat", "amount_incl_vat", "paid", "deleted"):
        click.echo(f"{key:>16}: {data[key]}")
    click.echo(f"{'counterparty':>16}: {document.counterparty.name} {document.counterparty.vat_number or ''}")
    for file in document.files:
        click.echo(f"{'file':>16}: {file.role.value} {file.name} ({file.size} bytes, sha256 {file.sha256[:12]}…)")
    if not document.files:
        click.echo(f"{'file':>16}: none (the source has no PDF for this document)")
    for delivery in deliveries:
        click.echo(f"{'→ ' + delivery['target']:>16}: {delivery['status']} {delivery['target_path'] or ''} "
                   f"{delivery['message'] or ''}".rstrip())


@documents.command(name="open")
@click.argument("document_id")
@click.option("--print-path", is_flag=True, help="Print a path to a copy of the PDF instead of opening it.")
@pass_state
@handle_errors
def open_(state: State, document_id: str, print_path: bool) -> None:
    """Open the document's PDF (or UBL) in the default viewer."""
    workspace = state.workspace()
    document = _get(workspace, document_id)
    file = document.pdf or document.ubl or (document.files[0] if document.files else None)
    if file is None:
        raise ConfigError(f"document {document_id} has no file to open")
    # Copy out of the blob store under a readable name, so viewers show the right title.
    out = workspace.home / "open" / file.name
    out.parent.mkdir(exist_ok=True)
    shutil.copyfile(workspace.blobs.path(file.sha256), out)
    if print_path or click.launch(str(out)) != 0:
        click.echo(str(out))
