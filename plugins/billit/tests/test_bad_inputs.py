"""The bad-input corpus (``BillitSandbox(bad_inputs=True)``): each bad document is a clear error of
its own naming the document and the field, the rest imports, and once Billit fixes it the document
imports on the next ordinary run (no ``--full``). Plugin level first, then through the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from invoicesync import Checkpoint, DocumentError, DocumentRef, ListingError, RemoteError
from invoicesync.sandbox import RunningSandbox
from invoicesync_billit.sandbox import BillitSandbox
from invoicesync_billit.sandbox.corpus import HOSTILE_NAMES

LISTING_DEFECTS = ("OrderID", "LastModified")


def test_unusable_listed_items_are_listing_errors_and_later_items_still_come(billit: Any) -> None:
    h = billit(documents=20, companies=1, bad_inputs=True, settings={"page_size": 5})
    h.connect()
    corpus = h.app.bad_inputs
    items = list(h.call("list_documents", company=h.company, cursor=None))
    errors = [i for i in items if isinstance(i, ListingError)]
    listed = [i.source_id for i in items if isinstance(i, DocumentRef)]
    by_defect = {defect: order_id for order_id, (defect, _) in corpus.defects.items()}
    assert sorted((e.field, e.source_id or "") for e in errors) == sorted([
        ("OrderID", ""),  # no OrderID: nothing to name it by but its OrderNumber, in the message
        ("OrderID", "x-17"),
        ("LastModified", str(by_defect["LastModified listed as a number"])),
    ])
    missing_id = h.app.company().orders[by_defect["no OrderID in the listing"]]
    assert any(missing_id["OrderNumber"] in e.message for e in errors if e.source_id is None)
    assert all(e.message for e in errors) and "20250101" in " ".join(e.message for e in errors)
    # Every usable order is still listed, those after the bad ones too (the hostile one is the last).
    usable = {str(i) for i, o in h.app.company().orders.items() if o["OrderType"] in ("Invoice", "CreditNote")
              and corpus.defects.get(i, ("", ""))[1] not in LISTING_DEFECTS}
    assert set(listed) == usable and listed[-1] == str(corpus.hostile)
    assert isinstance(items[-1], Checkpoint)
    # Listed again on the next page request of the same run? Never twice: once per run.
    assert len(errors) == 3


def test_an_unusable_item_of_a_kind_not_imported_holds_nothing_up(billit: Any) -> None:
    h = billit(documents=10, companies=1)
    offer = h.app.add_order(OrderType="Offer")
    offer["_garbled_in_list"] = {"OrderID": "x-17"}
    h.connect()
    items = list(h.call("list_documents", company=h.company, cursor=None))
    assert not [i for i in items if isinstance(i, ListingError)]  # offers are not imported here
    h.account.settings["order_types"] = ["Invoice", "CreditNote", "Offer"]
    items = list(h.call("list_documents", company=h.company, cursor=None))
    assert [(i.source_id, i.field) for i in items if isinstance(i, ListingError)] == [("x-17", "OrderID")]


def test_each_bad_document_fails_alone_naming_document_and_field(billit: Any) -> None:
    h = billit(documents=8, companies=1, bad_inputs=True)
    h.connect()
    corpus = h.app.bad_inputs
    for order_id, (defect, field) in corpus.defects.items():
        if field in LISTING_DEFECTS:
            continue
        with pytest.raises(DocumentError) as info:
            h.fetch(str(order_id))
        number = h.app.company().orders[order_id]["OrderNumber"]
        assert info.value.field == field, defect
        assert number in str(info.value.document) and str(order_id) in str(info.value.document), defect
    corpus.fix()
    for order_id in corpus.defects:
        document = h.fetch(str(order_id))
        assert all(f.size > 0 for f in document.files)


def test_an_empty_file_content_is_never_a_zero_byte_pdf(billit: Any) -> None:
    h = billit(documents=6, companies=1)
    h.connect()
    order = next(o for o in h.app.company().orders.values() if "OrderPDF" in o)
    file_id = order["OrderPDF"]["FileID"]
    h.app.files[file_id].damage = "empty"
    with pytest.raises(DocumentError, match="came empty") as info:
        h.fetch(str(order["OrderID"]))
    assert info.value.field == "OrderPDF/FileContent" and order["OrderNumber"] in str(info.value.document)
    h.app.files[file_id].damage = None
    document = h.fetch(str(order["OrderID"]))
    assert document.pdf is not None and document.pdf.size > 0


def test_hostile_names_come_out_as_plain_file_names(billit: Any) -> None:
    h = billit(documents=4, companies=1, bad_inputs=True)
    h.connect()
    document = h.fetch(str(h.app.bad_inputs.hostile))
    names = [f.name for f in document.files if f.name not in ("..-..-x.pdf",)]
    assert document.number == "../../x"  # the number is data; targets make their own paths safe
    for name in names:
        assert "/" not in name and "\\" not in name and name.isprintable() and 0 < len(name) <= 200
    hostile = {f.source_id: f.name for f in document.files}
    files = {a["FileName"]: a["FileID"] for a in h.app.company().orders[h.app.bad_inputs.hostile]["Attachments"]}
    assert hostile[files["../../x"]] == "x"
    assert hostile[files[HOSTILE_NAMES[1]]] == "receipt[31m.pdf"
    assert hostile[files[HOSTILE_NAMES[2]]].endswith(".pdf") and len(hostile[files[HOSTILE_NAMES[2]]]) == 200
    assert hostile[files["nul"]] == "nul"


def test_a_looping_next_page_link_is_an_error_for_the_company_not_an_endless_loop(billit: Any) -> None:
    h = billit(documents=10, companies=1)
    for order_id in sorted(h.app.company().orders)[:3]:
        h.app.delete_order(order_id)
    h.app.next_links = "loop"
    h.connect()
    with pytest.raises(RemoteError, match=r"page already read|repeat"):
        h.list()
    assert h.app.count("GET", r"^/v1/orders") < 10


# -- through the CLI ---------------------------------------------------------------------------


def _connect(cli: Callable[..., Any], running: RunningSandbox, app: BillitSandbox, root: Path,
             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVOICESYNC_BOOKS_API_KEY", app.account_secrets()["api_key"])
    settings = app.account_settings(running.url)
    result = cli("connect", "billit", "--name", "books", "--company", app.company().party["Name"],
                 *[a for k, v in settings.items() for a in ("--set", f"{k}={v}")])
    assert result.exit_code == 0, result.output
    result = cli("connect", "localfs", "--name", "folder", "--set", f"root={root}")
    assert result.exit_code == 0, result.output


def _documents(cli: Callable[..., Any]) -> dict[str, Any]:
    result = cli("documents", "--json")
    assert result.exit_code == 0, result.output
    return {d["id"].rsplit(":", 1)[1]: d for d in json.loads(result.output)}  # billit:books:<party>:<order>


def _corpus_run(cli: Callable[..., Any], serve_sandbox: Callable[..., RunningSandbox], tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch, *, listing_defects: bool) -> None:
    app = BillitSandbox(documents=10, companies=1, bad_inputs=True)
    corpus = app.bad_inputs
    assert corpus is not None
    if not listing_defects:
        for order_id, (_, field) in corpus.defects.items():
            if field in LISTING_DEFECTS:
                app.company().orders[order_id].pop("_garbled_in_list")
    running = serve_sandbox(app)
    root = tmp_path / "out" / "deep" / "invoices"  # a "../.." that escaped would still land in tmp_path
    _connect(cli, running, app, root, monkeypatch)

    bad = {order_id: defect for order_id, defect in corpus.defects.items()
           if listing_defects or defect[1] not in LISTING_DEFECTS}
    first = cli("sync")
    assert first.exit_code == 1, first.output
    for order_id, (defect, field) in bad.items():
        order = app.company().orders[order_id]
        # What names it: its OrderID; when the listing garbles that, what the listing showed.
        shown = {"no OrderID in the listing": order["OrderNumber"],
                 "OrderID listed as a string": "x-17"}.get(defect, str(order_id))
        assert shown in first.output and field in first.output, (defect, first.output)
    imported = _documents(cli)
    assert not set(map(str, bad)) & set(imported)
    assert str(corpus.hostile) in imported
    written = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert written and all(p.resolve().is_relative_to(root.resolve()) for p in written)  # ../../x stays in
    assert all(p.stat().st_size > 0 for p in written if p.suffix == ".pdf")

    corpus.fix()
    second = cli("sync")  # no --full: failures are retried, the held cursor lists the rest again
    assert second.exit_code == 0, second.output
    assert set(map(str, corpus.defects)) <= set(_documents(cli))
    assert cli("sync").exit_code == 0  # and it stays fixed


def test_the_corpus_through_the_cli_without_listing_defects(
        invoicesync_cli: Callable[..., Any], serve_sandbox: Callable[..., RunningSandbox], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    _corpus_run(invoicesync_cli, serve_sandbox, tmp_path, monkeypatch, listing_defects=False)


def test_the_whole_corpus_through_the_cli(
        invoicesync_cli: Callable[..., Any], serve_sandbox: Callable[..., RunningSandbox], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    _corpus_run(invoicesync_cli, serve_sandbox, tmp_path, monkeypatch, listing_defects=True)
