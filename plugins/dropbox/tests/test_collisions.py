"""Two different documents that render to one path: both land, the second as `` (2)``, whatever
``on_change`` says (it governs a changed version of the same document only), and every re-run
finds each document's own file again and writes nothing."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from invoicesync import Delivery, DeliveryStatus, Document, PushRequest
from invoicesync.sandbox import Request, Response

PATH = "/Invoices/Acme BV/2026/purchase/2026-01-15_Supplier NV_SAME-1.pdf"
SECOND = PATH.replace(".pdf", " (2).pdf")


def _twins(env: Any, ubl: bool = False) -> list[Document]:
    """Two documents (different source ids and PDFs) with one number, counterparty and date."""
    docs = []
    for source_id in ("a", "b"):
        doc = env.document("SAME-1", pdf=f"%PDF twin {source_id}".encode(),
                           ubl=f"<Invoice>{source_id}</Invoice>".encode() if ubl else None)
        docs.append(doc.model_copy(update={"id": f"memory:src:c1:{source_id}", "source_id": source_id}))
    return docs


def _files(env: Any) -> dict[str, bytes]:
    return {e.display: env.stored(e.display) for e in env.files()}


@pytest.mark.parametrize("policy", ["keep_both", "overwrite", "skip"])
def test_two_documents_with_one_name_both_land_and_are_found_again(env: Any, policy: str) -> None:
    env.configure(on_change=policy)
    docs = _twins(env)
    first = env.push(docs)
    assert [d.status for d in first] == [DeliveryStatus.DELIVERED] * 2, [d.message for d in first]
    assert [d.target_path for d in first] == [PATH, SECOND]
    assert _files(env) == {PATH: b"%PDF twin a", SECOND: b"%PDF twin b"}
    writes = env.writes()

    # With the ledger: each is looked up where it went.
    again = env.push([PushRequest(document=d, previous=p) for d, p in zip(docs, first, strict=True)])
    # Without it (lost, or a fresh home), in either order: each is found by its content_hash.
    lost = env.push(docs)
    backwards = env.push(list(reversed(docs)))[::-1]
    for run in (again, lost, backwards):
        assert [d.status for d in run] == [DeliveryStatus.UNCHANGED] * 2, [d.message for d in run]
        assert [d.target_id for d in run] == [d.target_id for d in first]
    assert env.writes() == writes


def test_the_ubl_follows_its_pdf_to_the_suffixed_name(env: Any) -> None:
    first = env.push(_twins(env, ubl=True))
    assert [d.status for d in first] == [DeliveryStatus.DELIVERED] * 2, [d.message for d in first]
    assert _files(env) == {PATH: b"%PDF twin a", PATH.replace(".pdf", ".xml"): b"<Invoice>a</Invoice>",
                           SECOND: b"%PDF twin b", SECOND.replace(".pdf", ".xml"): b"<Invoice>b</Invoice>"}
    writes = env.writes()
    assert [d.status for d in env.push(_twins(env, ubl=True))] == [DeliveryStatus.UNCHANGED] * 2
    assert env.writes() == writes


def test_a_later_version_changes_only_its_own_file(env: Any) -> None:
    """on_change=overwrite updates the document's own (2) file, never its twin's at the plain name."""
    env.configure(on_change="overwrite")
    a, b = _twins(env)
    [first_a] = env.push([a])
    [first_b] = env.push([b])  # a later batch: the name is taken by a's file in Dropbox
    assert first_b.target_path == SECOND
    corrected = env.document("SAME-1", pdf=b"%PDF twin b corrected").model_copy(
        update={"id": b.id, "source_id": "b"})
    [second_b] = env.push([PushRequest(document=corrected, previous=first_b)])
    assert second_b.status is DeliveryStatus.DELIVERED and second_b.target_path == SECOND
    assert second_b.target_id == first_b.target_id
    assert _files(env) == {PATH: b"%PDF twin a", SECOND: b"%PDF twin b corrected"}
    [again_a] = env.push([PushRequest(document=a, previous=first_a)])
    assert again_a.status is DeliveryStatus.UNCHANGED and again_a.target_path == PATH


def _intercept(env: Any, hook: Callable[[Request, Response | None], None]) -> None:
    """Call ``hook(request, None)`` before and ``hook(request, response)`` after the sandbox answers."""
    original = env.app.handle

    def handle(request: Request) -> Response:
        hook(request, None)
        response: Response = original(request)
        hook(request, response)
        return response

    env.app.handle = handle


def _is_lookup_of(request: Request, path: str) -> bool:
    """A look at ``path``: its own ``get_metadata``, or the listing the run's folder index is built from."""
    if request.path.endswith(("/files/list_folder", "/files/list_folder/continue")):
        return True
    return request.path.endswith("/files/get_metadata") and request.json().get("path") == path


def _commits_to(request: Request, path: str) -> bool:
    """A ``finish_batch_v2`` with an entry for ``path``."""
    return request.path.endswith("/files/upload_session/finish_batch_v2") and any(
        entry["commit"]["path"] == path for entry in request.json()["entries"])


def _count(env: Any, route: str) -> int:
    return int(env.app.count("POST", rf"^/2/files/{route}$"))


def test_concurrent_pushes_of_one_account_never_choose_the_same_free_name(env: Any) -> None:
    """The commit to the plain name is held until both pushes have placed their document and
    started its upload: the one that did not get the plain name must have stepped past it while
    the other's write was still to come, without trying the name and failing on a conflict.
    (Without claims both would choose the plain name, and the second commit would be refused and
    placed again: a third commit.)"""
    a, b = _twins(env)
    both_placed = threading.Event()
    starts: list[str] = []

    def hook(request: Request, response: Response | None) -> None:
        if response is None and request.path.endswith("/files/upload_session/start"):
            starts.append(request.path)
            if len(starts) == 2:
                both_placed.set()
        if response is None and _commits_to(request, PATH):
            both_placed.wait(5)  # bounded only so a broken push fails instead of hanging

    _intercept(env, hook)
    results: dict[str, list[Delivery]] = {}
    threads = [threading.Thread(target=lambda d=d: results.__setitem__(d.source_id, env.push([d]))) for d in (a, b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    [delivery_a], [delivery_b] = results["a"], results["b"]
    assert delivery_a.status is delivery_b.status is DeliveryStatus.DELIVERED, (delivery_a, delivery_b)
    assert {delivery_a.target_path, delivery_b.target_path} == {PATH, SECOND}
    assert both_placed.is_set()
    assert _count(env, "upload_session/start") == 2 and _count(env, "upload_session/finish_batch_v2") == 2


def test_a_name_taken_between_lookup_and_commit_is_placed_again(env: Any) -> None:
    """Another process writes a different file at our chosen name right after we looked: the
    commit is refused as a conflict, and the document goes to the next free name in the same run."""
    taken = threading.Event()

    def hook(request: Request, response: Response | None) -> None:
        if response is not None and _is_lookup_of(request, PATH) and not taken.is_set():
            taken.set()
            env.occupy(PATH, b"another process's file")

    _intercept(env, hook)
    [delivery] = env.push([_twins(env)[0]])
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert delivery.target_path == SECOND
    assert _files(env) == {PATH: b"another process's file", SECOND: b"%PDF twin a"}
    # The refused commit was made again to the new name, from the session already uploaded.
    assert _count(env, "upload_session/finish_batch_v2") == 2 and _count(env, "upload_session/start") == 1
