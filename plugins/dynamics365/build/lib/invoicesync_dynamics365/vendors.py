"""Find the Business Central vendor of a purchase document: by VAT number, then by exact name.

People type VAT numbers as they like (``BE 0123.456.789``, ``0123456789``), and an OData ``eq``
compares strings exactly. So the cheap exact filters go first, and only when they miss is the
vendor list read once per batch (``$select`` keeps it small) and compared normalised.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from invoicesync import OutcomeUnknown, Party

from .client import BusinessCentral, odata_string

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
        vat = normalise_vat(party.vat_number)
        name = party.name.strip()
        if vat:
            for candidate in dict.fromkeys([vat, (party.vat_number or "").strip()]):
                found = self.bc.vendors(self.company, f"taxRegistrationNumber eq {odata_string(candidate)}")
                if found:
                    return found[0]
        if name:
            found = self.bc.vendors(self.company, f"displayName eq {odata_string(name)}")
            if found:
                return found[0]
        if vat:
            for vendor in self._everyone():
                if same_vat(vendor.get("taxRegistrationNumber") or "", vat):
                    return vendor
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
                # The vendor may exist now: look before anyone creates another.
                vendor = self.find(party)
                if vendor is None:
                    raise
        if self._all is not None:
            self._all.append(vendor)
        return vendor

    def _everyone(self) -> list[dict[str, Any]]:
        if self._all is None:
            self._all = list(self.bc.iter_vendors(self.company, _SELECT))
        return self._all
