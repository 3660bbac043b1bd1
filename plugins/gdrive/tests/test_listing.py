"""The run's folder listings: one ``files.list`` per folder instead of two per new file, with
the same guarantees. Request COUNTS are asserted, never times."""

from __future__ import annotations

from typing import Any

import pytest
from invoicesync import DeliveryStatus
from invoicesync.sandbox import Request, Response
from invoicesync_gdrive import listing as listing_module
from invoicesync_gdrive.listing_store import KV_KEY
from invoicesync_gdrive.upload import APP_DOCUMENT

N = 12
FOLDER = "invoicesync/Acme BV/2026/purchase"


def _record_lists(drive: Any) -> list[str]:
    """The ``q`` of every ``files.list`` the sandbox answers from now on."""
    seen: list[str] = []
    original = drive.app.handle

    def handle(request: Request) -> Response:
        if request.method == "GET" and request.path == "/drive/v3/files":
            seen.append(request.arg("q") or "")
        response: Response = original(request)
        return response

    drive.app.handle = handle
    return seen


def _documents(drive: Any, n: int = N) -> list[Any]:
    return [drive.document(12 * k + 1, f"%PDF listing {k}".encode(), number=f"LST-{k:03d}") for k in range(n)]


def test_a_first_sync_lists_each_folder_once_and_asks_nothing_per_file(drive: Any) -> None:
    drive.push(_documents(drive, 1))  # the folder chain exists; what is left is per-file work
    drive.workspace.state.kv(drive.account.name).delete(KV_KEY)  # nothing kept: as on a first sync
    lists = _record_lists(drive)
    deliveries = drive.push(_documents(drive)[1:])
    assert [d.status for d in deliveries] == [DeliveryStatus.DELIVERED] * (N - 1)
    folder = drive.app.find_path(FOLDER)
    assert lists == [f"'{folder.id}' in parents and trashed = false"]  # one listing for 11 new files
    assert drive.uploads() == N  # one multipart upload per file


def test_a_file_created_between_the_listing_and_the_write_is_left_alone(drive: Any) -> None:
    """Someone adds a file named like ours after the run read the folder (its listing, or the changes
    since the last run): theirs is never overwritten, and our
    document still has exactly one file, found again (not copied) on the next run."""
    first, second = _documents(drive, 2)
    drive.push([first])
    folder = drive.app.find_path(FOLDER)
    name = "2026-02-01_Supplier NV_LST-001.pdf"
    original = drive.app.handle
    planted: list[Any] = []

    def handle(request: Request) -> Response:
        response: Response = original(request)
        listing = f"'{folder.id}' in parents and trashed = false"
        # After what the run knows of the folder is read: its listing, or the changes since the last run.
        read = (request.path == "/drive/v3/files" and request.arg("q") == listing) or \
            request.path == "/drive/v3/changes"
        if read and not planted:
            with drive.app.store.lock:
                planted.append(drive.app.store.create({"name": name, "parents": [folder.id]}, None,
                                                      "application/pdf", all_drives=True))
        return response

    drive.app.handle = handle
    [delivery] = drive.push([second])
    drive.app.handle = original
    [foreign] = planted
    assert delivery.status is DeliveryStatus.DELIVERED and delivery.target_id != foreign.id
    assert foreign.version == 1  # never overwritten
    ours = [f for f in drive.live_files() if f.app_properties.get(APP_DOCUMENT) == second.id]
    assert len(ours) == 1
    uploads = drive.uploads()
    [again] = drive.push([second], previous=False)  # even without the ledger: found, not copied
    assert again.status is DeliveryStatus.UNCHANGED and drive.uploads() == uploads


class _Crash(BaseException):
    """The process dies: nothing after this point runs, not even the ledger's record."""


def test_a_crash_after_the_write_before_the_listing_update_does_not_duplicate(
        drive: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    documents = _documents(drive, 3)

    def crash(self: Any, file: Any) -> None:
        raise _Crash

    with monkeypatch.context() as patch:
        patch.setattr(listing_module.FolderListings, "note", crash)
        with pytest.raises(_Crash):
            drive.push(documents, record=False)
    assert len(drive.live_files()) == 1  # the first write landed; then the process "died"
    uploads = drive.uploads()
    again = drive.push(documents)
    assert [d.status for d in again] == [DeliveryStatus.UNCHANGED] + [DeliveryStatus.DELIVERED] * 2
    assert drive.uploads() == uploads + 2 and len(drive.live_files()) == 3


def test_a_document_pushed_twice_in_one_run_is_found_again_not_copied(drive: Any) -> None:
    """The listing keeps only the name and marks of a file this run wrote; the same document
    coming back in the run (a changed version, an in-run retry) is read by id, never written twice."""
    first, second = _documents(drive, 2)
    drive.push([first])
    ctx = drive.context()
    try:
        from invoicesync import PushRequest
        from invoicesync_gdrive import plugin as gdrive_plugin

        def push(document: Any) -> Any:
            request = PushRequest(document=document, previous=None, files=document.files)
            [delivery] = gdrive_plugin.push_documents(account=drive.account, requests=[request], ctx=ctx)
            return delivery

        assert push(second).status is DeliveryStatus.DELIVERED
        uploads = drive.uploads()
        again = push(second)  # same run, no ledger record: only the listing knows the file
    finally:
        ctx.close()
    assert again.status is DeliveryStatus.UNCHANGED and drive.uploads() == uploads
    assert len([f for f in drive.live_files() if f.app_properties.get(APP_DOCUMENT) == second.id]) == 1


class _EmptyFolder:
    """A Drive client whose folders are empty: a listing that costs nothing."""

    lists = 0

    def list_files(self, q: str, fields: str | None = None) -> Any:
        self.lists += 1
        return iter(())


def test_the_listing_holds_no_file_in_memory_and_still_answers() -> None:
    """Memory must not grow with a run's size: 2,000 noted write answers in one folder's listing
    leave next to nothing in Python's heap (they are rows of the listing's SQLite file; whole
    answers in memory were ~2 KB a file, short tuples ~370 bytes), and the look-ups still answer
    from them without listing again."""
    import json
    import tracemalloc

    from invoicesync_gdrive.upload import APP_ROLE, APP_SHA256

    client = _EmptyFolder()
    listings = listing_module.FolderListings("memory-test")
    folder = "1folder"

    def owner(n: int) -> dict[str, str]:
        return {APP_DOCUMENT: f"billit:billit:574991:{1100000 + n}", APP_ROLE: "pdf"}

    def name(n: int) -> str:
        return f"2026-01-{n % 28 + 1:02d}_Supplier NV_INV-{n}.pdf"

    try:
        assert listings.owned(client, folder, owner(0)) == []  # listed (empty) before this run's writes
        answers = [json.dumps({
            "kind": "drive#file", "id": f"1{n:032d}", "name": name(n),
            "mimeType": "application/pdf", "parents": [folder], "md5Checksum": f"{n:032x}", "size": "123456",
            "trashed": False, "createdTime": "2026-01-01T00:00:00.000Z", "modifiedTime": "2026-01-01T00:00:00.000Z",
            "appProperties": {**owner(n), APP_SHA256: f"{n:064x}"}}) for n in range(2000)]
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for text in answers:
            listings.note(json.loads(text))  # as a write's answer arrives: parsed, noted, dropped
        kept = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        assert kept / len(answers) < 20, f"{kept / len(answers):.0f} bytes per file"
        # Every file is still known: ours by its marks, its name as taken for anyone else.
        [mine] = listings.owned(client, folder, owner(1234))
        assert mine["id"] == f"1{1234:032d}" and mine["name"] == name(1234)
        assert listings.taken(client, folder, [name(7), name(8), "free.pdf"], owner(7)) == {name(8)}
        listings.note({"id": f"1{7:032d}", "parents": [folder], "trashed": True})
        assert listings.owned(client, folder, owner(7)) == []
        assert client.lists == 1
    finally:
        listings.close()
