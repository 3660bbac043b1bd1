"""Folder listings kept between runs and brought up to date with Drive's changes feed.

Over HTTP against the sandbox: a later run placing a file into a folder it listed before sends no
``files.list`` for it (one ``changes.list`` instead), sees what others did to the folder in
between, lists afresh when Drive refuses the token, and never asks the feed when it places nothing.
Request COUNTS are asserted, never times."""

from __future__ import annotations

from typing import Any

import pytest
from invoicesync import DeliveryStatus
from invoicesync.sandbox import Request, Response
from invoicesync_gdrive import listing as listing_module
from invoicesync_gdrive import listing_store
from invoicesync_gdrive.listing_store import KV_KEY

FOLDER = "invoicesync/Acme BV/2026/purchase"
PDF = "application/pdf"


def _record(drive: Any) -> list[tuple[str, str, str]]:
    """``(method, path, q)`` of every request the sandbox answers from now on."""
    seen: list[tuple[str, str, str]] = []
    original = drive.app.handle

    def handle(request: Request) -> Response:
        seen.append((request.method, request.path, request.arg("q") or ""))
        response: Response = original(request)
        return response

    drive.app.handle = handle
    return seen


def _folder_lists(seen: list[tuple[str, str, str]], folder_id: str) -> int:
    listing = f"'{folder_id}' in parents and trashed = false"
    return sum(1 for method, path, q in seen if method == "GET" and path == "/drive/v3/files" and q == listing)


def _feed(seen: list[tuple[str, str, str]]) -> tuple[int, int]:
    """``(changes.list calls, getStartPageToken calls)``."""
    return (sum(1 for _, path, _ in seen if path == "/drive/v3/changes"),
            sum(1 for _, path, _ in seen if path == "/drive/v3/changes/startPageToken"))


def _plant(drive: Any, folder_id: str, name: str, **metadata: Any) -> Any:
    with drive.app.store.lock:
        return drive.app.store.create({"name": name, "parents": [folder_id], **metadata}, None, PDF,
                                      all_drives=True)


def _name(document: Any) -> str:
    return f"{document.issue_date.isoformat()}_Supplier NV_{document.number}.pdf"


def test_a_second_run_into_a_big_folder_asks_the_changes_feed_not_files_list(drive: Any) -> None:
    drive.configure(page_size=20)  # 300 files: 16 pages of files.list per listing
    drive.push([drive.document(1)])
    folder = drive.app.find_path(FOLDER)
    for n in range(300):
        _plant(drive, folder.id, f"other {n}.pdf")
    drive.workspace.state.kv(drive.account.name).delete(KV_KEY)  # a first run, with the folder full
    seen = _record(drive)
    drive.push([drive.document(2)])
    assert _folder_lists(seen, folder.id) == 16 and _feed(seen) == (0, 1)  # token first, then the listing
    seen.clear()
    [delivery] = drive.push([drive.document(3)])
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert _folder_lists(seen, folder.id) == 0 and _feed(seen) == (1, 0)  # one changes call, no listing
    assert [p for m, p, _ in seen if m == "GET" and p == "/drive/v3/files"] == []  # nor any other search
    assert len(drive.live_files()) == 303


def test_what_others_did_between_runs_is_seen(drive: Any) -> None:
    """Added, trashed, renamed, moved out, deleted for good: each reported by the feed and applied."""
    first, *others = [drive.document(n) for n in (1, 13, 25, 37, 49, 61)]
    drive.push([first])
    folder = drive.app.find_path(FOLDER)
    elsewhere = drive.app.find_path("invoicesync/Acme BV/2026")
    added, trashed, renamed, moved, deleted = others
    # The run before listed these names as taken by someone else's files...
    holders = {doc.id: _plant(drive, folder.id, _name(doc)) for doc in (trashed, renamed, moved, deleted)}
    drive.workspace.state.kv(drive.account.name).delete(KV_KEY)
    drive.push([drive.document(73)])  # lists the folder with them in it; the listings are kept
    # ... then, between runs, someone adds one, and frees the other four names.
    foreign = _plant(drive, folder.id, _name(added))
    with drive.app.store.lock:
        drive.app.store.update(holders[trashed.id], {"trashed": True}, None, all_drives=True)
        drive.app.store.update(holders[renamed.id], {"name": "renamed by hand.pdf"}, None, all_drives=True)
        drive.app.store.update(holders[moved.id], {}, None, [elsewhere.id], [folder.id], all_drives=True)
    drive.app.store.delete(holders[deleted.id].id)
    seen = _record(drive)
    deliveries = drive.push(others)
    assert _folder_lists(seen, folder.id) == 0 and _feed(seen) == (1, 0)
    names = [d.target_path.rsplit("/", 1)[1] for d in deliveries]
    stem = _name(added).removesuffix(".pdf")
    assert names == [f"{stem} (2).pdf"] + [_name(doc) for doc in (trashed, renamed, moved, deleted)]
    assert foreign.version == 1 and drive.files_named("renamed by hand.pdf")  # theirs left alone


def test_a_file_another_process_wrote_since_the_token_is_found_not_copied(
        drive: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another worker wrote our document's file and died before it saved its listings (or its ledger
    record): the saved listings do not have it, the changes feed does, and it is not written twice."""
    first, second = drive.document(1), drive.document(13)
    drive.push([first])
    with monkeypatch.context() as patch:
        patch.setattr(listing_module.FolderListings, "save", lambda self: None)
        drive.push([second], record=False)  # the other process: wrote the file, saved nothing
    assert len(drive.live_files()) == 2
    uploads = drive.uploads()
    seen = _record(drive)
    [again] = drive.push([second], previous=False)
    assert again.status is DeliveryStatus.UNCHANGED and drive.uploads() == uploads
    assert len(drive.live_files()) == 2 and _feed(seen) == (1, 0)
    assert _folder_lists(seen, drive.app.find_path(FOLDER).id) == 0


def test_a_refused_token_means_listing_afresh(drive: Any) -> None:
    drive.push([drive.document(1)])
    folder = drive.app.find_path(FOLDER)
    drive.app.store.expire_changes()  # Drive no longer takes any token handed out so far
    foreign = _plant(drive, folder.id, _name(drive.document(13)))
    seen = _record(drive)
    [delivery] = drive.push([drive.document(13)])
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert delivery.target_path.endswith(" (2).pdf") and foreign.version == 1
    assert _feed(seen) == (1, 1) and _folder_lists(seen, folder.id) == 1  # refused, new token, listed
    assert [m for m, p, _ in seen if p == "/drive/v3/changes"] == ["GET"]
    seen.clear()
    drive.push([drive.document(25)])  # and the new token is kept
    assert _feed(seen) == (1, 0) and _folder_lists(seen, folder.id) == 0


def test_a_run_that_places_nothing_asks_no_feed(drive: Any) -> None:
    documents = [drive.document(n) for n in (1, 13)]
    drive.push(documents)
    kv = drive.workspace.state.kv(drive.account.name)
    head = kv.get(KV_KEY)
    seen = _record(drive)
    again = drive.push(documents)  # known files, read by id: nothing to place
    assert [d.status for d in again] == [DeliveryStatus.UNCHANGED] * 2
    assert _feed(seen) == (0, 0) and not [p for m, p, _ in seen if p == "/drive/v3/files"]
    assert kv.get(KV_KEY) == head  # nothing read, nothing saved


def test_two_processes_saving_at_once_leave_a_readable_index(drive: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two Celery workers of one account end their runs at the same moment: whichever head wins
    matches its own shards, and the next run reads it and catches up instead of listing."""
    monkeypatch.setattr(listing_store, "SHARD_ROWS", 2)
    documents = [drive.document(12 * n + 1) for n in range(6)]
    drive.push(documents[:1])
    kv = drive.workspace.state.kv(drive.account.name)
    real_set = type(kv).set
    interleaved: list[str] = []

    def set_then_let_the_other_save(self: Any, key: str, value: Any) -> None:
        real_set(self, key, value)
        if not interleaved and key.startswith(KV_KEY + "/"):  # one save is mid-way: the other runs whole
            interleaved.append(key)
            drive.push(documents[2:6])

    monkeypatch.setattr(type(kv), "set", set_then_let_the_other_save)
    drive.push(documents[1:2])
    monkeypatch.setattr(type(kv), "set", real_set)
    assert interleaved
    head = kv.get(KV_KEY)
    rows = [row for page in listing_store.stored_rows(kv, head) for row in page]
    saved = {row[listing_store.FIELDS.index("document")] for row in rows}
    # One worker's view or the other's, whole: never one worker's token over the other's rows.
    assert saved in ({d.id for d in documents[:2]}, {d.id for d in documents}), "the head matches its shards"
    shard_keys = {k for k in _kv_keys(drive) if k.startswith(KV_KEY + "/")}
    assert shard_keys == {f"{KV_KEY}/{head['generation']}/{n}" for n in range(head["shards"])}
    seen = _record(drive)
    [again] = drive.push([drive.document(85)])
    assert again.status is DeliveryStatus.DELIVERED and _feed(seen) == (1, 0)
    assert _folder_lists(seen, drive.app.find_path(FOLDER).id) == 0
    assert len(drive.live_files()) == 7


def test_listings_saved_by_an_earlier_release_are_read_then_retired(drive: Any) -> None:
    """Homes keep listings saved before the shards moved to core's ``kv_shards``: a head and shards
    in exactly the layout that release wrote are read (the next run catches up, lists nothing, and
    sees the name taken), and the next save retires them in the same layout."""
    drive.push([drive.document(1)])
    folder = drive.app.find_path(FOLDER)
    document = drive.document(13)
    holder = _plant(drive, folder.id, _name(document))
    kv = drive.workspace.state.kv(drive.account.name)
    kv.delete(KV_KEY)
    drive.push([drive.document(25)])  # lists the folder with the holder in it
    saved = kv.get(KV_KEY)
    rows = [row for n in range(saved["shards"]) for row in kv.get(f"{KV_KEY}/{saved['generation']}/{n}")]
    assert holder.id in {row[1] for row in rows}
    for key in _kv_keys(drive):
        if key.startswith(KV_KEY):
            kv.delete(key)
    old = "0b6f3c2a9d8e4f1a8c7b6a5d4e3f2a1b"  # as that release named its generations: uuid4().hex
    kv.set(KV_KEY, {"corpus": saved["corpus"], "token": saved["token"], "fields": list(listing_store.FIELDS),
                    "folders": saved["folders"], "generation": old, "shards": 2, "retired": []})
    kv.set(f"{KV_KEY}/{old}/0", rows[:1])
    kv.set(f"{KV_KEY}/{old}/1", rows[1:])
    seen = _record(drive)
    [delivery] = drive.push([document])
    assert delivery.status is DeliveryStatus.DELIVERED and delivery.target_path.endswith(" (2).pdf")
    assert _feed(seen) == (1, 0) and _folder_lists(seen, folder.id) == 0  # read, not listed
    head = kv.get(KV_KEY)
    assert head.keys() == {"corpus", "token", "fields", "folders", "generation", "shards", "retired"}
    assert head["retired"] == [] and head["generation"] != old
    assert {k for k in _kv_keys(drive) if k.startswith(KV_KEY + "/")} == {
        f"{KV_KEY}/{head['generation']}/{n}" for n in range(head["shards"])}


def _kv_keys(drive: Any) -> list[str]:
    store = drive.workspace.state
    rows = store._all("SELECT key FROM kv WHERE account = ?", (drive.account.name,))
    return [row["key"] for row in rows]


def test_a_listing_cut_short_is_neither_trusted_nor_kept(drive: Any) -> None:
    """A listing that fails after its first page leaves rows behind; the next listing of that
    folder starts over (a file deleted meanwhile is not taken for present), and none is saved."""
    from invoicesync import PushRequest
    from invoicesync_gdrive import plugin as gdrive_plugin

    drive.configure(page_size=100)  # 600 files: the first 500 rows are written before page 6 fails
    drive.push([drive.document(1)])
    folder = drive.app.find_path(FOLDER)
    document = drive.document(13)
    holder = _plant(drive, folder.id, _name(document))  # first in the listing's order
    for n in range(599):
        _plant(drive, folder.id, f"other {n}.pdf")
    drive.workspace.state.kv(drive.account.name).delete(KV_KEY)
    drive.app.add_fault({"status": 400, "code": "invalid", "method": "GET", "path": r"^/drive/v3/files$",
                         "after": 5, "times": 1})  # the listing's sixth page
    ctx = drive.context()
    try:
        def push() -> Any:
            request = PushRequest(document=document, previous=None, files=document.files)
            [delivery] = gdrive_plugin.push_documents(account=drive.account, requests=[request], ctx=ctx)
            return delivery

        assert push().status is DeliveryStatus.FAILED
        drive.app.store.delete(holder.id)
        delivery = push()
    finally:
        ctx.close()
    assert delivery.status is DeliveryStatus.DELIVERED and delivery.target_path.endswith(_name(document))
    head = drive.workspace.state.kv(drive.account.name).get(KV_KEY)
    assert head["folders"] == [folder.id]
    rows = [row for page in listing_store.stored_rows(drive.workspace.state.kv(drive.account.name), head)
            for row in page]
    assert holder.id not in {row[1] for row in rows} and len(rows) == 601  # others, doc 1, doc 13


def test_a_root_in_a_shared_drive_follows_that_drives_feed(drive: Any) -> None:
    """The feed is read from the corpus the listings search: the shared drive (``driveId``)."""
    from invoicesync_gdrive.sandbox import SHARED_DRIVE_ID

    with drive.app.store.lock:
        root = drive.app.store.create({"name": "Team invoices", "mimeType": "application/vnd.google-apps.folder",
                                       "parents": [SHARED_DRIVE_ID]}, None, None, all_drives=True)
    drive.configure(root_folder_id=root.id)  # a user login, no shared_drive_id set
    drive.push([drive.document(1)])
    folder = drive.app.find_path("Acme BV/2026/purchase", start=root.id)
    foreign = _plant(drive, folder.id, _name(drive.document(13)))  # someone else, in the shared drive
    asked: list[tuple[str, str | None]] = []
    original = drive.app.handle

    def handle(request: Request) -> Response:
        if request.path.startswith("/drive/v3/changes") or request.path == "/drive/v3/files":
            asked.append((request.path, request.arg("driveId")))
        response: Response = original(request)
        return response

    drive.app.handle = handle
    [delivery] = drive.push([drive.document(13)])
    assert delivery.target_path.endswith(" (2).pdf") and foreign.version == 1
    assert asked == [("/drive/v3/changes", SHARED_DRIVE_ID)]
