"""Webhooks in the state, on SQLite and PostgreSQL: registrations kept per (account, company), and a
delivery seen once (the replay guard), shared by every process on the state and forgotten in time."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from invoicesync.models import Account, AccountDirection
from invoicesync.state import WebhookRecord
from invoicesync.state._sql import SqlStore


def record(company: str, url: str = "https://x.example/webhooks/books/") -> WebhookRecord:
    return WebhookRecord("books", company, url + company, ["1", "2"], [f"webhook_secret_{company}_0"])


def test_registrations_are_kept_replaced_and_removed(open_store: Callable[..., SqlStore]) -> None:
    store = open_store()
    store.save_webhook(record("1"), "t")
    store.save_webhook(record("2"), "t")
    store.save_webhook(record("1", "https://y.example/webhooks/books/"), "t2")  # moved: replaces
    assert [(r.company, r.url) for r in store.webhooks("books")] == [
        ("1", "https://y.example/webhooks/books/1"), ("2", "https://x.example/webhooks/books/2")]
    assert store.webhooks("other") == [] and len(store.webhooks()) == 2
    store.delete_webhook("books", "1")
    assert [r.company for r in open_store().webhooks("books")] == ["2"]  # as the next process sees it


def test_a_delivery_is_seen_once_by_every_process_until_it_expires(open_store: Callable[..., SqlStore]) -> None:
    first, second = open_store(), open_store()
    assert first.first_sighting("books", "1:sig", 600)
    assert not second.first_sighting("books", "1:sig", 600)  # another process on the same state
    assert second.first_sighting("other", "1:sig", 600)  # another account's key is its own
    assert first.first_sighting("books", "1:short", 0.05)
    time.sleep(0.1)
    assert first.first_sighting("books", "1:short", 600)  # expired: pruned, so the table stays small


def test_deleting_the_account_forgets_its_webhooks(open_store: Callable[..., SqlStore]) -> None:
    store = open_store()
    store.save_account(Account(name="books", plugin="billit", direction=AccountDirection.IMPORT))
    store.save_webhook(record("1"), "t")
    assert store.first_sighting("books", "1:sig", 600)
    store.delete_account("books")
    assert store.webhooks("books") == []
    assert store.first_sighting("books", "1:sig", 600)


@pytest.mark.parametrize("version", [7])
def test_a_state_before_webhooks_gains_the_tables_and_keeps_its_data(open_store: Callable[..., SqlStore],
                                                                     version: int) -> None:
    old = open_store(target_version=version)
    old.save_account(Account(name="books", plugin="billit", direction=AccountDirection.IMPORT))
    old.close()
    store = open_store()
    assert store.get_account("books") is not None and store.webhooks() == []
