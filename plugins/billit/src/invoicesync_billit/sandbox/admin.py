"""The emulator's data helpers for tests and the admin API: find, edit, add, delete orders,
crowd a second, drop a PDF, attach a large file. Every change stamps ``LastModified`` as Billit
does. Over HTTP: ``POST /__sandbox__/orders/{id}`` (a JSON object of changes) edits an order,
``DELETE /__sandbox__/orders/{id}`` deletes it."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from invoicesync.sandbox import Request, Response

from .data import CompanyData, Seeder, StoredFile, attach_files, wire_time


class OrderAdmin:
    """Mixed into ``BillitSandbox``; holds nothing itself."""

    companies: list[CompanyData]
    files: dict[str, StoredFile]
    seeder: Seeder
    data_lock: threading.RLock
    _last_stamp: datetime
    error: Callable[..., Response]
    route: Callable[..., None]

    def _init_admin_routes(self) -> None:
        self.route("POST", r"/__sandbox__/orders/(?P<order_id>\d+)", self._admin_edit)
        self.route("DELETE", r"/__sandbox__/orders/(?P<order_id>\d+)", self._admin_delete)

    def order_changed(self, party_id: int, order_id: int, update_type: str) -> None:
        """An order was inserted (``I``), updated (``U``) or deleted (``D``): webhooks deliver it."""

    def company(self, party_id: int | str | None = None) -> CompanyData:
        if party_id is None:
            return self.companies[0]
        return next(c for c in self.companies if c.party_id == int(party_id))

    def _find(self, order_id: int) -> tuple[CompanyData, dict[str, Any]]:
        for company in self.companies:
            if order_id in company.orders:
                return company, company.orders[order_id]
        raise KeyError(order_id)

    def next_stamp(self) -> datetime:
        """A new LastModified: now (local, no offset), strictly after every earlier one."""
        with self.data_lock:
            stamp = max(datetime.now().replace(microsecond=datetime.now().microsecond // 1000 * 1000),
                        self._last_stamp + timedelta(milliseconds=1))
            self._last_stamp = stamp
            return stamp

    def edit_order(self, order_id: int, *, at: datetime | None = None, regenerate: bool = True,
                   **changes: Any) -> dict[str, Any]:
        """Change fields (any value, even of the wrong type: for malformed-payload tests) and
        bump LastModified (to ``at`` if given); the PDF/UBL are re-rendered like Billit does."""
        with self.data_lock:
            company, order = self._find(order_id)
            order["LastModified"] = wire_time(at or self.next_stamp())
            order.update(changes)  # after the stamp: a test may break LastModified itself
            if at is not None:
                self._last_stamp = max(self._last_stamp, at)
            if regenerate and isinstance(order.get("OrderNumber"), str):
                attach_files(order, self.files, self.seeder)
        self.order_changed(company.party_id, order_id, "U")
        return order

    def add_order(self, party_id: int | None = None, *, at: datetime | None = None, **overrides: Any
                  ) -> dict[str, Any]:
        with self.data_lock:
            company = self.company(party_id)
            order = self.seeder.order(company, at or self.next_stamp(), len(company.orders) + 1, **overrides)
            attach_files(order, self.files, self.seeder)
            company.orders[order["OrderID"]] = order
        self.order_changed(company.party_id, order["OrderID"], "I")
        return order

    def delete_order(self, order_id: int, *, at: datetime | None = None) -> None:
        """Soft-delete: the order leaves ``/v1/orders`` and shows in ``/v1/orders/deleted``."""
        with self.data_lock:
            company, order = self._find(order_id)
            del company.orders[order_id]
            order["LastModified"] = wire_time(at or self.next_stamp())
            company.deleted[order_id] = order
        self.order_changed(company.party_id, order_id, "D")

    def crowd_one_second(self, count: int, *, at: datetime | None = None, party_id: int | None = None,
                         same_instant: bool = False) -> list[int]:
        """Stamp ``count`` orders of a company inside one second (a bulk import): distinct
        milliseconds mostly, a few sharing one, and OrderIDs not in LastModified order; or all
        at one and the same instant."""
        with self.data_lock:
            company = self.company(party_id)
            second = (at or self._last_stamp + timedelta(seconds=5)).replace(microsecond=0)
            chosen = sorted(company.orders)[:count]
            millis = [(n * 7919) % 997 for n in range(len(chosen))]  # scrambled, some repeated below
            for n, order_id in enumerate(chosen):
                moment = second + timedelta(milliseconds=0 if same_instant else
                                            millis[n - n % 3] if n % 5 == 0 else millis[n])
                company.orders[order_id]["LastModified"] = wire_time(moment)
            self._last_stamp = max(self._last_stamp, second + timedelta(seconds=1))
            return chosen

    def drop_pdf(self, order_id: int) -> None:
        with self.data_lock:
            _, order = self._find(order_id)
            order["_no_pdf"] = True
            attach_files(order, self.files, self.seeder)

    def add_large_file(self, order_id: int, size: int, chunk: int = 1 << 20) -> StoredFile:
        """Give an order a big generated attachment (streamed, never held in memory)."""
        def render() -> Iterator[bytes]:
            block = bytes(range(256)) * (chunk // 256)
            left = size
            while left > 0:
                yield block[:left]
                left -= len(block)

        with self.data_lock:
            _, order = self._find(order_id)
            stored = StoredFile(self.seeder.uuid(), "scan.bin", "application/octet-stream", render, order_id)
            self.files[stored.file_id] = stored
            order.setdefault("Attachments", []).append({"FileID": stored.file_id, "FileName": stored.name})
            return stored

    def _admin_edit(self, request: Request) -> Response:
        try:
            changes = json.loads(request.body or b"{}", parse_float=Decimal)  # amounts keep their digits
            order = self.edit_order(int(request.params["order_id"]), **(changes or {}))
        except KeyError:
            return self.error(404, "NotFound", "no such order")
        return Response.json({"OrderID": order["OrderID"], "LastModified": order["LastModified"]})

    def _admin_delete(self, request: Request) -> Response:
        try:
            self.delete_order(int(request.params["order_id"]))
        except KeyError:
            return self.error(404, "NotFound", "no such order")
        return Response.json({"deleted": True})
