from __future__ import annotations

import unicodedata

import pytest
from invoicesync import Company, ConfigError, Direction, Document, FileRef, FileRole, Party
from invoicesync.naming import (
    NameRules,
    file_ext,
    file_keys,
    main_file,
    plan_files,
    render_path,
    safe_segment,
    sibling,
    validate_template,
    with_suffix_number,
)


def doc(counterparty: str = "Supplier NV", number: str = "INV-1") -> Document:
    return Document(id="x", source="s", account="a", company=Company(id="c1", name="Acme BV"), source_id="1",
                    direction=Direction.PURCHASE, number=number, counterparty=Party(name=counterparty),
                    issue_date="2026-03-04")


def test_template_renders_each_field_safely() -> None:
    path = render_path("{company}/{year}/{direction}/{date}_{counterparty}_{number}.{ext}", doc())
    assert path == "Acme BV/2026/purchase/2026-03-04_Supplier NV_INV-1.pdf"


@pytest.mark.parametrize("evil", ["../../etc/passwd", "..", "a/../../b", "\\..\\..\\x", "/abs"])
def test_a_field_value_can_never_climb_out_or_add_folders(evil: str) -> None:
    path = render_path("{company}/{counterparty}.{ext}", doc(counterparty=evil))
    parts = path.split("/")
    assert len(parts) == 2 and ".." not in parts and not path.startswith("/")


def test_reserved_characters_names_and_trailing_dots() -> None:
    assert safe_segment('a<b>c:"d|e?f*g') == "a_b_c__d_e_f_g"
    assert safe_segment("CON") == "_CON" and safe_segment("nul.pdf") == "_nul.pdf"
    assert safe_segment("name. . ") == "name"
    assert safe_segment("tab\there\x00") == "tab_here_"
    assert safe_segment("") == "_"


def test_unicode_is_nfc_and_length_is_limited_in_bytes_keeping_the_extension() -> None:
    decomposed = unicodedata.normalize("NFD", "Société Générale")
    assert safe_segment(decomposed) == unicodedata.normalize("NFC", "Société Générale")
    long = safe_segment("é" * 300 + ".pdf", NameRules(max_bytes=100))
    assert long.endswith(".pdf") and len(long.encode()) <= 100


def test_collision_names_and_companions() -> None:
    assert with_suffix_number("a/b.pdf", 2) == "a/b (2).pdf"
    assert sibling("a/b (2).pdf", "xml") == "a/b (2).xml"


def test_bad_templates_are_refused_with_the_reason() -> None:
    with pytest.raises(ConfigError, match="unknown template field"):
        validate_template("{nope}.pdf")
    with pytest.raises(ConfigError, match="must be relative"):
        validate_template("../{number}.pdf")
    with pytest.raises(ConfigError):
        render_path("{company.__class__}.pdf", doc())


def ref(name: str, role: str = "attachment", media_type: str = "application/octet-stream", n: int = 0) -> FileRef:
    return FileRef(name=name, media_type=media_type, size=1, sha256=f"{n:064x}", role=FileRole(role))


def test_every_file_is_planned_beside_the_main_one_with_safe_unique_names() -> None:
    files = [ref("INV-1.pdf", "pdf", n=1), ref("INV-1.xml", "ubl", n=2), ref("terms.pdf", n=3),
             ref("../../etc/passwd", n=4), ref("CON", media_type="image/jpeg", n=5), ref("Terms.PDF", n=6),
             ref(unicodedata.normalize("NFD", "reçu.jpg"), n=7), ref("x" * 300 + ".xlsx", n=8)]
    planned = [p for p, _ in plan_files("A/2026/INV-1.pdf", files)]
    assert planned[:4] == ["A/2026/INV-1.pdf", "A/2026/INV-1.xml", "A/2026/INV-1_terms.pdf", "A/2026/INV-1_passwd"]
    assert planned[4] == "A/2026/INV-1_CON.jpg"  # an extension from the media type
    assert planned[5] == "A/2026/INV-1_Terms (2).PDF"  # unique even where names ignore case
    assert planned[6] == "A/2026/" + unicodedata.normalize("NFC", "INV-1_reçu.jpg")
    assert planned[7].endswith(".xlsx") and len(planned[7].split("/")[-1].encode()) <= 255
    assert all(p.startswith("A/2026/") and p.count("/") == 2 for p in planned)


def test_an_image_only_document_is_named_by_its_image() -> None:
    photo = ref("scan", media_type="image/jpeg", n=1)
    assert main_file([photo]) is photo and file_ext(photo) == "jpg"
    assert main_file([ref("a.png", n=1), ref("b.pdf", "pdf", n=2)]).name == "b.pdf"  # type: ignore[union-attr]
    assert plan_files("x/INV.jpg", [photo]) == [("x/INV.jpg", photo)]


def test_file_keys_are_stable_and_unique_within_a_document() -> None:
    files = [ref("a.pdf", "pdf", n=1), ref("a.xml", "ubl", n=2), ref("photo.jpg", n=3), ref("photo.jpg", n=4)]
    assert file_keys(files) == ["pdf", "ubl", "attachment:photo.jpg", "attachment:photo.jpg#2"]
