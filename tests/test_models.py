from __future__ import annotations

import hashlib
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from invoicesync import Company, Direction, Document, FileRef, FileRole, Party
from invoicesync.state import FolderBlobStore
from pydantic import ValidationError


def make(**changes: object) -> Document:
    values: dict[str, object] = dict(
        id=Document.make_id("billit", "main", "c1", "42"), source="billit", account="main",
        company=Company(id="c1", name="Acme"), source_id="42", direction=Direction.SALES,
        amount_incl_vat="121.10",
    )
    values.update(changes)
    return Document(**values)  # type: ignore[arg-type]


def test_amounts_are_decimal_and_floats_are_refused() -> None:
    doc = make(amount_excl_vat="100.10", amount_vat=Decimal("21.00"))
    assert doc.amount_incl_vat == Decimal("121.10")
    assert isinstance(doc.amount_excl_vat, Decimal)
    with pytest.raises(ValidationError, match="never float"):
        make(amount_vat=0.1)


def test_stable_id_names_source_account_company_and_source_id() -> None:
    assert make().id == "billit:main:c1:42"


def test_blob_store_hashes_while_streaming(tmp_path: Path) -> None:
    blobs = FolderBlobStore(tmp_path)
    chunks = [b"%PDF-1.4\n", b"x" * 100_000, b"%%EOF"]
    ref = blobs.put(iter(chunks), name="a.pdf", media_type="application/pdf", role=FileRole.PDF)
    assert ref.sha256 == hashlib.sha256(b"".join(chunks)).hexdigest()
    assert ref.size == sum(map(len, chunks))
    assert b"".join(blobs.iter_chunks(ref.sha256)) == b"".join(chunks)
    assert list((tmp_path / "tmp").iterdir()) == []  # no temp file left behind


def test_version_changes_with_files_and_fields_but_not_with_raw(tmp_path: Path) -> None:
    blobs = FolderBlobStore(tmp_path)
    one = blobs.put(iter([b"one"]), name="a.pdf", media_type="application/pdf", role=FileRole.PDF)
    two = blobs.put(iter([b"two"]), name="a.pdf", media_type="application/pdf", role=FileRole.PDF)
    base = make(files=[one])
    assert base.version == make(files=[one], raw={"anything": 1}).version
    assert base.version != make(files=[two]).version
    assert base.version != make(files=[one], number="INV-2").version
    assert base.pdf == one and base.ubl is None


def test_version_of_a_party_without_other_names_is_what_it_was_before_the_field() -> None:
    # Computed before Party.other_names existed: stored ledgers compare against such versions, so
    # adding the field must not make every document look changed.
    document = Document(
        id="billit:src:1:INV-1", source="billit", account="src", company=Company(id="1", name="Acme BV"),
        source_id="INV-1", direction=Direction.PURCHASE, number="INV-1", issue_date=date(2026, 3, 2),
        currency="EUR", amount_incl_vat=Decimal("121.00"),
        counterparty=Party(name="Brouwerij De Klok NV", vat_number="BE0412345678"),
        files=[FileRef(name="INV-1.pdf", media_type="application/pdf", size=3, sha256="a" * 64, role=FileRole.PDF)],
    )
    assert document.counterparty.other_names == []
    assert document.version == "713d6fe95a7ba424cbdfbc85a10ed12c"
    known_as = document.model_copy(update={"counterparty": document.counterparty.model_copy(
        update={"other_names": ["De Klok"]})})
    assert known_as.version != document.version


def test_version_is_computed_once_and_forgotten_when_a_field_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    # A sync reads a document's version several times per target: it is kept, and a changed field
    # (assignment, as the store's mark_deleted does, or model_copy with an update) recomputes it.
    document = make(number="INV-1")
    computed: list[str] = []
    original = Document._compute_version

    def counting(self: Document) -> str:
        computed.append(self.number)
        return original(self)

    monkeypatch.setattr(Document, "_compute_version", counting)
    first = document.version
    assert document.version == first and computed == ["INV-1"]

    document.number = "INV-2"
    assert document.version != first and computed == ["INV-1", "INV-2"]
    assert document.version == make(number="INV-2").version

    document.deleted = True
    assert document.version == make(number="INV-2", deleted=True).version

    copied = document.model_copy(update={"number": "INV-3"})
    assert copied.version == make(number="INV-3", deleted=True).version
    same = document.model_copy()
    assert same.version == document.version
    assert Document.model_validate_json(copied.model_dump_json()).version == copied.version
