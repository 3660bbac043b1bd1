"""``documents``: the library, with each document's delivery status per target."""

from __future__ import annotations

import itertools
import shutil
import tempfile
from datetime import date, datetime
from pathlib import Path
from typing import Any

import click

from ..errors import ConfigError
from ..models import Document
from ..state import DocumentFilter, FailingSince, LibraryEntry
from ..workspace import Workspace
from ..workspace_files import home_is_writable
from ._common import State, handle_errors, json_option, pass_state, print_json

STATUSES = ("delivered", "unchanged", "deleted", "pending", "failed", "skipped", "undelivered")


def _targets(workspace: Workspace) -> list[str]:
    return [a.name for a in workspace.accounts()
            if a.direction.value == "export" and workspace.direction_known(a)]


def _row(entry: LibraryEntry, targets: list[str]) -> dict[str, Any]:
    document, deliveries = entry.document, entry.deliveries
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
        "failing": {
            t: {"since": since.first_failed_at.isoformat(), "attempts": since.attempts, "runs": since.runs,
                "message": deliveries[t].message}
            for t, since in entry.failing.items() if t in targets
        },
    }


def failing_text(since: FailingSince) -> str:
    """``failing for 3 runs since 2026-11-28 (5 attempts)``: how long, in the words ops read."""
    runs = f"{since.runs} run{'s' if since.runs != 1 else ''}"
    attempts = f", {since.attempts} attempts" if since.attempts != since.runs else ""
    return f"failing for {runs} since {since.first_failed_at:%Y-%m-%d %H:%M} UTC{attempts}"


@click.group(invoke_without_command=True)
@click.option("--account", help="Only documents imported by this account.")
@click.option("--company", help="Only this company id.")
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), help="Issued on or after (YYYY-MM-DD).")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), help="Issued on or before (YYYY-MM-DD).")
@click.option("--direction", type=click.Choice(["sales", "purchase"]))
@click.option("--kind", help="invoice, credit_note, …")
@click.option("--status", type=click.Choice(STATUSES), help="Only documents with this delivery status at some target.")
@click.option("--deleted", is_flag=True, help="Only documents deleted at the source (and what each target did).")
@click.option("--limit", type=int, default=None, help="Show at most this many.")
@json_option
@click.pass_context
@handle_errors
def documents(ctx: click.Context, account: str | None, company: str | None, since: Any, until: Any,
              direction: str | None, kind: str | None, status: str | None, deleted: bool, limit: int | None,
              as_json: bool) -> None:
    """The Documents view: what was imported, and where each document was delivered."""
    if ctx.invoked_subcommand is not None:
        return
    workspace = ctx.find_object(State).workspace(writable=False)  # type: ignore[union-attr]
    targets = _targets(workspace)
    filters = DocumentFilter(account=account, company=company, direction=direction, kind=kind,
                             since=_day(since), until=_day(until), status=status, targets=tuple(targets),
                             include_deleted=deleted, only_deleted=deleted)
    rows = (_row(entry, targets) for entry in workspace.state.library(filters))
    selected = list(itertools.islice(rows, limit)) if limit else list(rows)
    if as_json:
        print_json(selected)
        return
    _warn_unavailable(workspace)
    if not selected:
        click.echo("No documents. Run `invoicesync sync` to import them (the first sync can take a while)."
                   if not status else f"No documents with status {status}.")
        return
    for row in selected:
        flags = "" if row["pdf"] else " [no PDF]"
        flags += " [deleted]" if row["deleted"] else ""
        status_text = " ".join(f"{t}:{s}" for t, s in row["deliveries"].items())
        click.echo(f"{row['id']}  {row['issue_date'] or '-':<10} {row['direction']:<8} {row['kind']:<11} "
                   f"{row['number']:<14} {(row['counterparty'] or '')[:24]:<24} {row['total'] or '':>12} "
                   f"{row['currency']}  {status_text}{flags}")
        if status == "failed":
            for target, failing in row["failing"].items():
                since = FailingSince(datetime.fromisoformat(failing["since"]), failing["attempts"], failing["runs"])
                click.echo(f"    → {target}: {failing_text(since)}: {failing['message'] or 'failed'}")
    click.echo(f"{len(selected)} document(s). `invoicesync documents show ID` for details.", err=True)


def _warn_unavailable(workspace: Workspace) -> None:
    for account in workspace.accounts():
        if problem := workspace.account_problem(account):
            click.secho(f"account {account.name} is unavailable: {problem}", fg="yellow", err=True)


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
    workspace = state.workspace(writable=False)
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
    workspace = state.workspace(writable=False)
    document = _get(workspace, document_id)
    file = document.pdf or document.ubl or (document.files[0] if document.files else None)
    if file is None:
        raise ConfigError(f"document {document_id} has no file to open")
    # Copy out of the blob store under a readable name, so viewers show the right title; outside
    # the home when this user may only read it.
    writable = home_is_writable(workspace.home)
    folder = workspace.home / "open" if writable else Path(tempfile.mkdtemp(prefix="invoicesync-"))
    out = folder / file.name
    out.parent.mkdir(exist_ok=True)
    with workspace.blobs.open(file.sha256) as source, open(out, "wb") as copy:  # a stream: S3 has no path
        shutil.copyfileobj(source, copy, 1024 * 1024)
    if print_path or click.launch(str(out)) != 0:
        click.echo(str(out))
