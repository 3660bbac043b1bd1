"""Vendor matching: normalised VAT first, then normalised names; two equal matches are an error."""

from __future__ import annotations

from typing import Any

import pytest
from invoicesync import DeliveryStatus, Party
from invoicesync_dynamics365.vendors import normalise_name


def push_for(bc: Any, party: Party) -> Any:
    document = bc.document().model_copy(update={"counterparty": party})
    [delivery] = bc.push(document)
    return delivery


def test_two_vendors_with_one_vat_number_are_not_guessed_between(bc: Any) -> None:
    duplicate = bc.company.add_vendor("De Klok Brewery", "BE0412345678")  # the fixture has "BE 0412.345.678"
    original = next(v for v in bc.company.vendors.values() if v["displayName"] == "Brouwerij De Klok NV")
    delivery = push_for(bc, Party(name="Brouwerij De Klok NV", vat_number="BE0412.345.678"))
    assert delivery.status is DeliveryStatus.FAILED
    assert original["number"] in delivery.message and duplicate["number"] in delivery.message
    assert "VAT number" in delivery.message and "field counterparty" in delivery.message
    assert bc.invoices() == []


def test_two_vendors_with_one_name_are_not_guessed_between(bc: Any) -> None:
    twin = bc.company.add_vendor("OFFICE SUPPLIES B.V.", "")
    original = next(v for v in bc.company.vendors.values() if v["displayName"] == "Office Supplies BV")
    delivery = push_for(bc, Party(name="Office Supplies BV"))
    assert delivery.status is DeliveryStatus.FAILED
    assert original["number"] in delivery.message and twin["number"] in delivery.message
    assert bc.invoices() == []


@pytest.mark.parametrize("typed", ["  BROUWERIJ de   klok n.v. ", "Brouwerij\u00a0De Klok NV",
                                   "\uff22\uff52\uff4f\uff55\uff57\uff45\uff52\uff49\uff4a De Klok NV"])  # full-width
def test_name_matches_after_case_whitespace_punctuation_and_nfkc(bc: Any, typed: str) -> None:
    delivery = push_for(bc, Party(name=typed))
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert bc.invoices()[0]["vendorName"] == "Brouwerij De Klok NV"


def test_decomposed_accents_match_composed_ones(bc: Any) -> None:
    bc.company.add_vendor("Café Léon SPRL", "")
    delivery = push_for(bc, Party(name="Cafe\u0301 Le\u0301on sprl"))
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert bc.invoices()[0]["vendorName"] == "Café Léon SPRL"


def test_other_names_of_the_party_are_matched_too(bc: Any) -> None:
    delivery = push_for(bc, Party(name="De Klok (trading name)", other_names=["Brouwerij De Klok NV"]))
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert bc.invoices()[0]["vendorName"] == "Brouwerij De Klok NV"


def test_a_name_match_with_another_vat_number_is_not_this_vendor(bc: Any) -> None:
    bc.company.add_vendor("Same Name NV", "BE0999.999.999")
    delivery = push_for(bc, Party(name="Same Name NV", vat_number="BE0111111111"))
    assert delivery.status is DeliveryStatus.FAILED and delivery.message.startswith("vendor not found")
    assert bc.invoices() == []


def test_vat_match_wins_over_a_name_match(bc: Any) -> None:
    bc.company.add_vendor("Brouwerij De Klok NV (old)", "")
    delivery = push_for(bc, Party(name="Brouwerij De Klok NV (old)", vat_number="BE 0412 345 678"))
    assert delivery.status is DeliveryStatus.DELIVERED, delivery.message
    assert bc.invoices()[0]["vendorName"] == "Brouwerij De Klok NV"


def test_normalise_name() -> None:
    assert normalise_name(" Brouwerij  De Klok N.V. ") == normalise_name("brouwerij de klok nv")
    assert normalise_name("\uff2f\uff46\uff46\uff49\uff43\uff45") == "office" and normalise_name(None) == ""
