"""Stock ledger: goods received, reserved for orders, and shipped."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shopkit import _faults
from shopkit.catalog import Catalog


class OutOfStock(Exception):
    """Raised when an order asks for more units than are available."""

    def __init__(self, sku: str, requested: int, available: int) -> None:
        super().__init__(f"{sku}: requested {requested}, only {available} available")
        self.sku = sku
        self.requested = requested
        self.available = available


@dataclass
class StockLevel:
    """Units of one SKU in the warehouse, and how many are promised to orders."""

    on_hand: int = 0
    reserved: int = 0

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


class StockLedger:
    """Stock levels per SKU and the reservations of open orders."""

    def __init__(self) -> None:
        self._levels: dict[str, StockLevel] = {}
        self._orders: dict[str, dict[str, int]] = {}

    @classmethod
    def stocked(cls, catalog: Catalog, quantity: int) -> StockLedger:
        """A ledger holding `quantity` units of every product in `catalog`."""
        ledger = cls()
        for product in catalog:
            ledger.receive(product.sku, quantity)
        return ledger

    def receive(self, sku: str, quantity: int) -> None:
        if quantity <= 0:
            raise ValueError(f"received quantity must be positive, got {quantity}")
        self._levels.setdefault(sku, StockLevel()).on_hand += quantity

    def level(self, sku: str) -> StockLevel:
        """A copy of the stock level of `sku` (zero for unknown SKUs)."""
        level = self._levels.get(sku, StockLevel())
        return StockLevel(level.on_hand, level.reserved)

    def available(self, sku: str) -> int:
        return self.level(sku).available

    def reserve(self, order_id: str, items: dict[str, int]) -> None:
        """Reserve all `items` (SKU -> units) for an order, or none of them."""
        if order_id in self._orders:
            raise ValueError(f"order {order_id!r} already holds a reservation")
        for sku, quantity in items.items():
            if quantity > self.available(sku):
                raise OutOfStock(sku, quantity, self.available(sku))
        for sku, quantity in items.items():
            self._levels[sku].reserved += quantity
        self._orders[order_id] = dict(items)

    def release(self, order_id: str) -> None:
        """Cancel an order's reservation, making its units available again."""
        items = self._orders.pop(order_id)
        if _faults.bug("inventory"):
            return
        for sku, quantity in items.items():
            self._levels[sku].reserved -= quantity

    def ship(self, order_id: str) -> None:
        """Ship an order: its reserved units leave the warehouse."""
        for sku, quantity in self._orders.pop(order_id).items():
            level = self._levels[sku]
            level.reserved -= quantity
            level.on_hand -= quantity

    def open_orders(self) -> list[str]:
        return sorted(self._orders)

    def total_on_hand(self) -> int:
        return sum(level.on_hand for level in self._levels.values())

    def snapshot(self) -> dict[str, Any]:
        """Plain data (JSON-ready) describing the whole ledger."""
        return {
            "levels": {sku: [lv.on_hand, lv.reserved] for sku, lv in sorted(self._levels.items())},
            "orders": {order: dict(items) for order, items in sorted(self._orders.items())},
        }

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> StockLedger:
        ledger = cls()
        for sku, (on_hand, reserved) in data["levels"].items():
            ledger._levels[sku] = StockLevel(on_hand, reserved)
        ledger._orders = {order: dict(items) for order, items in data["orders"].items()}
        return ledger
