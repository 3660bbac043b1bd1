"""Find the Business Central vendor of a purchase document: by VAT number, then by name.

Both are compared normalised, because people type them as they like: a VAT number as letters and
digits only (``BE 0123.456.789`` = ``BE0123456789``, and ``0123456789`` matches too), a name
after Unicode NFKC, case folding, and without whitespace or punctuation (``Brouwerij De Klok N.V.``
= ``brouwerij de klok nv``), against the party's ``name`` and every one of its ``other_names``.
Two vendors that match equally are never guessed between: the document fails naming both, so a
person can merge or tell them apart. A vendor whose VAT number is set and differs is not matched by
name. The vendor list is read once per batch (``$select`` keeps it small, ``@odata.nextLink`` is
followed), since an OData ``eq`` compares strings exactly and cannot see two spellings of one.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from typing import Any

from invoicesync import DocumentError, OutcomeUnknown, Party

from .client import BusinessCentral

_SELECT = "id,number,displayName,taxRegistrationNumber,blocked"
#: One lock per company for "find, else create" a vendor: batches are exported concurrently, and
#: two of them meeting the same new supplier must not both create it.
_CREATE_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_CREATE_LOCKS_GUARD = threading.Lock()


def _create_lock(api: str, company: str) -> threading.Lock:
    with _CREATE_LOCKS_GUARD:
        return _CREATE_LOCKS.setdefault((api, company), threading.Lock())


def normalise_vat(value: str | None) -> str:
    """``BE0123.456.789`` → ``BE0123456789``: letters and digits only, upper case."""
    return re.sub(r"[^0-9A-Za-z]", "", value or "").upper()


def normalise_name(value: str | None) -> str:
    """``Brouwerij  De Klok N.V.`` → ``brouwerijdeklocknv``: NFKC, case-folded, no whitespace or punctuation."""
    text = unicodedata.normalize("NFKC", value or "").casefold()
    return "".join(ch for ch in text if not ch.isspace() and not unicodedata.category(ch).startswith("P"))


def _one(party: Party, vendors: list[dict[str, Any]], how: str) -> dict[str, Any]:
    distinct = list({str(v.get("id")).lower(): v for v in vendors}.values())
    if len(distinct) == 1:
        return distinct[0]
    listed = " and ".join(f"{v.get('number')} {v.get('displayName')!r}" for v in distinct[:5])
    raise DocumentError(
        f"{len(distinct)} Business Central vendors match the supplier {party.name!r} by {how}: {listed}; "
        "nothing is guessed: merge them, block the wrong one or correct its "
        f"{'VAT number' if how == 'VAT number' else 'name'}, and run again",
        field="counterparty")


def same_vat(a: str, b: str) -> bool:
    """Equal once normalised; a number typed without its country prefix matches one with it."""
    a, b = normalise_vat(a), normalise_vat(b)
    if not a or not b:
        return False
    if a == b:
        return True
    prefixed_a, prefixed_b = a[:2].isalpha(), b[:2].isalpha()
    if prefixed_a != prefixed_b:
        return (a[2:] if prefixed_a else a) == (b[2:] if prefixed_b else b)
    return False


class VendorDirectory:
    """Vendor look-ups for one batch; the full list is read at most once, and only on a miss."""

    def __init__(self, bc: BusinessCentral, company: str, api: str = "") -> None:
        self.bc = bc
        self.company = company
        self.api = api  #: which environment (``settings.api_base``): companies are per environment
        self._all: list[dict[str, Any]] | None = None

    def find(self, party: Party) -> dict[str, Any] | None:
        """The party's one vendor, ``None`` if there is none; two equal matches raise ``DocumentError``."""
        vat = normalise_vat(party.vat_number)
        if vat:
            by_vat = [v for v in self._everyone() if same_vat(v.get("taxRegistrationNumber") or "", vat)]
            if by_vat:
                return _one(party, by_vat, "VAT number")
        names = {n for n in (normalise_name(x) for x in [party.name, *party.other_names]) if n}
        if names:
            by_name = [v for v in self._everyone() if normalise_name(v.get("displayName")) in names
                       and not (vat and normalise_vat(v.get("taxRegistrationNumber")))]
            if by_name:
                return _one(party, by_name, "name")
        return None

    def create(self, party: Party) -> dict[str, Any]:
        """Create the party's vendor, unless another batch did since we looked (then use that one)."""
        body: dict[str, Any] = {"displayName": party.name.strip()[:100]}
        if party.vat_number:
            body["taxRegistrationNumber"] = normalise_vat(party.vat_number)
        with _create_lock(self.api, self.company):
            self._all = None  # what we read before waiting for the lock may be stale
            vendor = self.find(party)
            if vendor is not None:
                return vendor
            try:
                vendor = self.bc.create(self.company, "vendors", body)
            except OutcomeUnknown:
                # The vendor may exist now: read the list afresh and look before anyone creates another.
                self._all = None
                vendor = self.find(party)
                if vendor is None:
                    raise
            if self._all is not None and all(str(v.get("id")).lower() != str(vendor["id"]).lower()
                                             for v in self._all):
                self._all.append(vendor)
        return vendor

    def _everyone(self) -> list[dict[str, Any]]:
        if self._all is None:
            self._all = list(self.bc.iter_vendors(self.company, _SELECT))
        return self._all
