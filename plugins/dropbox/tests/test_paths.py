"""Name sanitising: what Dropbox refuses or advises against never reaches it."""

from __future__ import annotations

import unicodedata
from typing import Any

import pytest
from invoicesync import DeliveryStatus, DocumentError
from invoicesync_dropbox.paths import MAX_PATH_UNITS, document_path, fit_path
from invoicesync_dropbox.settings import DEFAULT_TEMPLATE


def test_forbidden_characters_trailing_dots_and_spaces_are_replaced(env: Any) -> None:
    doc = env.document("A/B\\C", pdf=b"%PDF", counterparty='Evil: "Corp" <x>|?* . ')
    path = document_path(DEFAULT_TEMPLATE, doc, ext="pdf")
    name = path.rsplit("/", 1)[-1]
    assert path.count("/") == 5  # no extra folders from the slash in the number
    assert not set('<>:"|?*\\') & set(name)
    assert all(not segment.endswith((".", " ")) for segment in path.split("/")[1:-1])
    assert name.endswith("_A_B_C.pdf")


def test_names_are_nfc(env: Any) -> None:
    decomposed = unicodedata.normalize("NFD", "Société Générale")
    doc = env.document("INV-1", pdf=b"%PDF", counterparty=decomposed)
    path = document_path(DEFAULT_TEMPLATE, doc, ext="pdf")
    assert unicodedata.is_normalized("NFC", path) and "Société Générale" in path


def test_long_names_fit_the_path_limit_and_keep_the_extension(env: Any) -> None:
    doc = env.document("INV-LONG", pdf=b"%PDF", counterparty="Ü" * 400)
    path = document_path(DEFAULT_TEMPLATE, doc, ext="pdf")
    assert len(path.encode("utf-16-le")) // 2 <= MAX_PATH_UNITS
    assert path.endswith(".pdf")
    assert all(len(segment.encode()) <= 255 for segment in path.split("/"))


def test_emoji_count_double_towards_the_limit() -> None:
    path = "/" + "a" * 200 + "/" + "😀" * 40 + ".pdf"
    fitted = fit_path(path)
    assert len(fitted.encode("utf-16-le")) // 2 <= MAX_PATH_UNITS and fitted.endswith("😀.pdf")


def test_a_path_too_long_to_fix_is_a_document_error() -> None:
    with pytest.raises(DocumentError, match="template"):
        fit_path("/" + "f" * 255 + "/" + "g" * 30 + ".pdf", "doc-1")


def test_sanitised_names_are_accepted_by_the_sandbox(env: Any) -> None:
    deliveries = env.push([env.document("X/1", pdf=b"%PDF 1", counterparty="Tab\there \\ and . "),
                           env.document("X:2", pdf=b"%PDF 2", counterparty=unicodedata.normalize("NFD", "Zoë"))])
    assert [d.status for d in deliveries] == [DeliveryStatus.DELIVERED] * 2, [d.message for d in deliveries]
    for delivery in deliveries:
        assert env.app.namespace.get(delivery.target_path) is not None


def test_template_from_settings_is_used(env: Any) -> None:
    env.configure(template="Boekhouding/{year}-{month}/{number}.{ext}")
    [delivery] = env.push([env.document("INV-T", pdf=b"%PDF t")])
    assert delivery.target_path == "/Boekhouding/2026-01/INV-T.pdf"
