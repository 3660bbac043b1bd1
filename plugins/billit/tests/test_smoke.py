from __future__ import annotations

from typing import Any


def test_api_key_connect_list_fetch(billit: Any) -> None:
    h = billit(documents=30)
    companies = h.connect()
    assert [c.id for c in companies] == [str(c.party_id) for c in h.app.companies]
    listing = h.list()
    print(len(listing.refs), listing.cursor)
    doc = h.fetch(listing.ids[0])
    print(doc.model_dump(exclude={"raw"}))
