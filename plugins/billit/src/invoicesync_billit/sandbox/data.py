"""Seeded, deterministic Billit data: companies, counterparties, orders in both directions, files.

Orders are kept in wire form (the JSON Billit sends: timestamps without offset, amounts as
numbers with Billit's fixed scale — ``864.00``, ``21.00``, ``1.00000`` — kept as ``Decimal`` so
they go on the wire with those digits, null fields omitted). Files are rendered from their order when
downloaded, so thousands of orders cost little memory.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from .attachments import EXTRAS, choose_extras
from .files import order_pdf, order_ubl

CENT = Decimal("0.01")
#: Billit's own scales on the wire: money and VAT rates to the cent, quantities to one decimal
#: (``2.0``), exchange rates to five (``1.00000``).
QUANTITY = Decimal("0.0")
FX_RATE = Decimal("1.00000")
SUMMARY_OMITS = ("Customer", "Supplier", "OrderLines", "Attachments", "VatGroups", "Messages", "Comments",
                 "OrderTitle", "PeriodFrom", "PeriodTill", "CustomFields", "Tags", "ExternalProviderReferences",
                 "PaymentLinks", "PaidDate")

_COMPANIES = [
    ("Vilbox BV", "Merchtem", "1785"), ("Atelier Dewaele BV", "Gent", "9000"),
    ("Brouwerij Kempen NV", "Turnhout", "2300"), ("Lumière Consulting SRL", "Namur", "5000"),
    ("De Groene Fietser VOF", "Leuven", "3000"), ("Maison Delcour SA", "Liège", "4000"),
]
_CUSTOMERS = ["Bakkerij Peeters", "Hotel Ter Duinen", "Garage Verstraete", "Studio Lemaire", "Apotheek Claes",
              "Restaurant 't Pleintje", "Dakwerken Janssens", "Kinderopvang Zonnetje", "Boekhandel Wouters",
              "IT Solutions Mertens", "Fleuriste Dubois", "Schrijnwerkerij Maes"]
_SUPPLIERS = ["Proximus NV", "Engie Electrabel", "Bpost NV", "Colruyt Group", "Telenet BV", "Makro Belgium",
              "Brico Belgium", "Securex", "Total Energies Belgium", "Office Depot BV", "Coolblue België",
              "Sodexo Belgium"]
LEGAL_FORMS = frozenset({"NV", "BV", "SA", "SRL", "VOF", "BVBA"})
_ITEMS = [("Consultancy (hours)", 21, 85), ("Webdesign", 21, 450), ("Onderhoudscontract", 21, 120),
          ("Boeken", 6, 24), ("Catering", 12, 35), ("Transport", 21, 60), ("Drukwerk", 21, 140),
          ("Export services", 0, 300)]


def belgian_vat(rng: random.Random) -> str:
    """A Belgian VAT number with a correct mod-97 check."""
    base = rng.randrange(2_000_000, 9_999_999)  # the 8 digits "0nnnnnnn"
    return f"BE0{base:07d}{97 - base % 97:02d}"


def wire_time(moment: datetime) -> str:
    """Billit style: no offset, 0-3 fraction digits with trailing zeros dropped."""
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    millis = moment.microsecond // 1000
    return text + (f".{millis:03d}".rstrip("0") if millis else "")


def money(value: Decimal | int) -> Decimal:
    """An amount as Billit writes it: to the cent, always two decimals (``864.00``)."""
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def vat_groups(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The per-rate totals Billit adds to every order (``Mtvh`` is the VAT base)."""
    groups: dict[Decimal, dict[str, Any]] = {}
    for line in lines:
        group = groups.setdefault(line["VATPercentage"], {
            "VentilationCode": "1", "VATPercentage": line["VATPercentage"], "TotalExcl": money(0),
            "TotalVAT": money(0), "TotalIncl": money(0), "Mtvh": money(0), "FinancialReductionAmount": money(0)})
        for key, source in (("TotalExcl", "TotalExcl"), ("TotalVAT", "TotalVAT"), ("TotalIncl", "TotalIncl"),
                            ("Mtvh", "TotalExcl")):
            group[key] += line[source]
    return list(groups.values())


def structured_reference(rng: random.Random) -> str:
    number = rng.randrange(1, 10**10)
    check = number % 97 or 97
    digits = f"{number:010d}{check:02d}"
    return f"+++{digits[:3]}/{digits[3:7]}/{digits[7:]}+++"


@dataclass
class StoredFile:
    file_id: str
    name: str
    mime: str
    render: Callable[[], Iterable[bytes]]
    order_id: int = 0  #: the order it belongs to: files are scoped to that order's company
    #: A bad-input test's damage to the answer: "empty" (``FileContent: ""``), "not-base64".
    damage: str | None = None


@dataclass
class CompanyData:
    party: dict[str, Any]
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    deleted: dict[int, dict[str, Any]] = field(default_factory=dict)
    customers: list[dict[str, Any]] = field(default_factory=list)
    suppliers: list[dict[str, Any]] = field(default_factory=list)

    @property
    def party_id(self) -> int:
        return int(self.party["PartyID"])


def summary(order: dict[str, Any]) -> dict[str, Any]:
    """What ``GET /v1/orders`` lists: no parties but CounterParty, no lines, OrderPDF id only."""
    item = {k: v for k, v in order.items() if k not in SUMMARY_OMITS}
    if isinstance(order.get("OrderPDF"), dict):
        item["OrderPDF"] = {"FileID": order["OrderPDF"].get("FileID")}
    return item


class Seeder:
    """Makes companies and orders from a seed; the same seed always gives the same data."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        #: Extra attachments are drawn apart, so the orders are the same with or without them.
        self.extras_rng = random.Random(f"extras-{seed}")
        self._ids = iter(range(1_100_000, 10**9))
        self._party_ids = iter(range(600_000, 10**9))

    def uuid(self, rng: random.Random | None = None) -> str:
        return str(uuid.UUID(int=(rng or self.rng).getrandbits(128), version=4))

    def company(self, index: int) -> CompanyData:
        name, city, zipcode = _COMPANIES[index % len(_COMPANIES)]
        if index >= len(_COMPANIES):
            name = f"{name} {index // len(_COMPANIES) + 1}"
        party_id = 574_991 + index * 1_117
        vat = belgian_vat(self.rng)
        party = {
            "TabNameAlias": name.split()[0].upper(), "APIAllowed": True, "UserLanguage": "EN",
            "APIEnabledFeatures": {"TimeRegistration": True, "Projects": True, "DailyReceipts": False,
                                   "FinancialReduction": False, "GLAccounts": False, "Cashbook": False},
            "PartyID": party_id, "BookYearStart": "2025-01-01T00:00:00", "Name": name,
            "Addresses": [{"AddressType": "InvoiceAddress", "Name": name, "Street": "Stationsstraat",
                           "StreetNumber": str(10 + index), "Zipcode": zipcode, "City": city, "CountryCode": "BE"}],
            "VATNumber": vat, "VATLiable": True, "Users": [], "Role": "Professional", "VATDeductable": True,
            "Identifiers": [], "DefaultCurrencyTC": "EUR", "SendUBL": True, "SendPDF": True,
            "Created": wire_time(datetime(2024, 11, 1, 9, 0) + timedelta(days=index)),
        }
        data = CompanyData(party)
        data.customers = [self.counterparty(n, "Customer") for n in _CUSTOMERS]
        data.suppliers = [self.counterparty(n, "Supplier") for n in _SUPPLIERS]
        return data

    def counterparty(self, name: str, party_type: str) -> dict[str, Any]:
        vat = belgian_vat(self.rng)
        # Billit shows a DisplayName; the legal Name often carries the company form as well.
        display = name.rsplit(" ", 1)[0] if name.rsplit(" ", 1)[-1] in LEGAL_FORMS else name
        party: dict[str, Any] = {
            "PartyID": next(self._party_ids), "Name": name, "DisplayName": display, "VATNumber": vat,
            "PartyType": party_type, "VATLiable": True, "VATDeductable": True, "Language": "NL",
            "Addresses": [], "Street": "Kerkstraat", "StreetNumber": str(self.rng.randrange(1, 200)),
            "City": "Antwerpen", "Zipcode": "2000", "CountryCode": "BE",
            "IBAN": f"BE{self.rng.randrange(10, 99)}{self.rng.randrange(10**11, 10**12)}",
            "Identifiers": [{"IdentifierType": "CBE", "Identifier": vat[2:], "SchemeID": "0208",
                             "Preferred": True}],
        }
        if self.rng.random() < 0.3:
            party["Identifiers"].append({"IdentifierType": "GLN", "Identifier": str(self.rng.randrange(10**12,
                                                                                                      10**13)),
                                         "SchemeID": "0088", "Preferred": False})
        return party

    def order(self, company: CompanyData, moment: datetime, number: int, **overrides: Any) -> dict[str, Any]:
        rng = self.rng
        extras = overrides.pop("_extras", None)
        direction = overrides.pop("OrderDirection", "Cost" if rng.random() < 0.4 else "Income")
        roll = rng.random()
        kind = overrides.pop("OrderType", "Invoice" if roll < 0.82 else "CreditNote" if roll < 0.92
                             else rng.choice(["Offer", "DeliveryNote", "OrderForm"]))
        other = rng.choice(company.customers if direction == "Income" else company.suppliers)
        me = {k: company.party[k] for k in ("PartyID", "Name", "VATNumber", "Addresses")}
        customer, supplier = (other, me) if direction == "Income" else (me, other)
        lines, excl, vat = [], Decimal(0), Decimal(0)
        for _ in range(rng.randrange(1, 4)):
            label, rate, price = rng.choice(_ITEMS)
            quantity = Decimal(rng.randrange(1, 6))
            unit = (Decimal(price) * Decimal(rng.randrange(80, 121)) / 100).quantize(CENT)
            line_excl = (unit * quantity).quantize(CENT)
            line_vat = (line_excl * rate / 100).quantize(CENT, rounding=ROUND_HALF_UP)
            excl, vat = excl + line_excl, vat + line_vat
            lines.append({"Quantity": quantity.quantize(QUANTITY), "UnitPriceExcl": money(unit),
                          "Description": label, "TotalExcl": money(line_excl), "TotalVAT": money(line_vat),
                          "VATPercentage": money(rate), "TotalIncl": money(line_excl + line_vat),
                          "VentilationCode": "1"})
        prefix = {"Invoice": "INV", "CreditNote": "CN", "Offer": "OFF", "DeliveryNote": "DN", "OrderForm": "OF"}[kind]
        order_number = (f"{prefix}-{moment.year}-{number:05d}" if direction == "Income"
                        else f"{other['Name'].split()[0][:3].upper()}/{moment.year}/{rng.randrange(1000, 99999)}")
        order_date = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        paid = rng.random() < 0.55
        order: dict[str, Any] = {
            "OrderID": next(self._ids), "CompanyID": company.party_id, "OrderNumber": order_number,
            "CustomerID": customer["PartyID"], "SupplierID": supplier["PartyID"], "CounterPartyID": other["PartyID"],
            "Customer": customer, "Supplier": supplier, "CounterParty": other,
            "OrderDate": wire_time(order_date), "ExpiryDate": wire_time(order_date + timedelta(days=30)),
            "OrderType": kind, "OrderDirection": direction,
            "LastModified": wire_time(moment), "Created": wire_time(moment - timedelta(seconds=rng.randrange(1, 900))),
            "OrderLines": lines, "TotalExcl": money(excl), "TotalVAT": money(vat), "TotalIncl": money(excl + vat),
            "VatGroups": vat_groups(lines), "Tags": [], "PaymentReference": structured_reference(rng), "Paid": paid,
            "Currency": "EUR", "IsSent": direction == "Income", "Invoiced": False, "RemindersSent": 0,
            "ToPay": money(0) if paid else money(excl + vat), "OrderStatus": "Paid" if paid else "ToPay",
            "Overdue": False, "DaysOverdue": 0, "FXRateToForeign": FX_RATE, "DeliveryDate": wire_time(order_date),
            "ExportedToConnector": False, "AccountantVerificationNeeded": False,
            "CurrentDocumentDeliveryDetails": {"IsDocumentDelivered": direction == "Income"},
            "Attachments": [], "Messages": [], "CustomFields": {},
        }
        if paid:
            order["PaidDate"] = wire_time(order_date + timedelta(days=rng.randrange(1, 30)))
        if direction == "Cost" and rng.random() < 0.7:
            order["ExternalProvider"] = "Peppol"
        elif direction == "Income" and rng.random() < 0.3:
            order["ExternalProvider"] = "APIFeed"
        if direction == "Income" and rng.random() < 0.06:
            order.update(OrderStatus="Draft", IsSent=False, Paid=False, ToPay=order["TotalIncl"])
            order.pop("PaidDate", None)
            order["_no_pdf"] = True
        order.update(overrides)
        order["_extras"] = choose_extras(order, self.extras_rng) if extras is None else extras
        return order

    def times(self, count: int, start: datetime) -> Iterator[datetime]:
        """Increasing LastModified moments; now and then a few share one instant (a bulk import)."""
        moment = start
        produced = 0
        while produced < count:
            moment += timedelta(minutes=self.rng.randrange(1, 240), milliseconds=self.rng.randrange(0, 1000))
            repeat = 3 if self.rng.random() < 0.03 else 1
            for _ in range(min(repeat, count - produced)):
                produced += 1
                yield moment


def attach_files(order: dict[str, Any], files: dict[str, StoredFile], seeder: Seeder,
                 extra_attachment: bool = False) -> None:
    """(Re)create the order's OrderPDF and attachments, as Billit does when a document changes."""
    for entry in [order.get("OrderPDF"), *(order.get("Attachments") or [])]:
        if isinstance(entry, dict):
            files.pop(str(entry.get("FileID")), None)
    order.pop("OrderPDF", None)
    order["Attachments"] = []
    snapshot = dict(order)
    peppol = order.get("ExternalProvider") == "Peppol"
    stem = seeder.uuid() if peppol else order["OrderNumber"].replace("/", "-")
    if not order.get("_no_pdf"):
        pdf = StoredFile(seeder.uuid(), f"{stem}.xml_1.pdf" if peppol else f"{stem}.pdf", "application/pdf",
                         lambda: [order_pdf(snapshot)], order["OrderID"])
        files[pdf.file_id] = pdf
        order["OrderPDF"] = {"FileID": pdf.file_id, "FileName": pdf.name}
    if peppol:
        ubl = StoredFile(seeder.uuid(), f"{stem}.xml", "text/xml", lambda: [order_ubl(snapshot)], order["OrderID"])
        files[ubl.file_id] = ubl
        order["Attachments"].append({"FileID": ubl.file_id, "FileName": ubl.name})
    for kind in order.get("_extras") or []:
        name, mime, render = EXTRAS[kind]
        extra = StoredFile(seeder.uuid(seeder.extras_rng), name, mime,
                           (lambda r: lambda: [r(snapshot)])(render), order["OrderID"])
        files[extra.file_id] = extra
        order["Attachments"].append({"FileID": extra.file_id, "FileName": extra.name})
    if extra_attachment:
        csv = StoredFile(seeder.uuid(), "timesheet.csv", "text/csv",
                         lambda: [b"date;hours\n2025-01-06;7.5\n2025-01-07;8\n"], order["OrderID"])
        files[csv.file_id] = csv
        order["Attachments"].append({"FileID": csv.file_id, "FileName": csv.name})
