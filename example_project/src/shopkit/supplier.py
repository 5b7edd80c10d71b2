"""Client for a supplier's quote API (JSON over HTTP)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from shopkit import _faults
from shopkit.money import Money

RETRYABLE_STATUS = frozenset({429, 502, 503, 504})


class Transport(Protocol):
    """What the client needs from an HTTP library: GET a path, get (status, body)."""

    def get(self, path: str) -> tuple[int, str]: ...


class SupplierError(Exception):
    """The supplier API could not answer a request."""


@dataclass(frozen=True)
class Quote:
    """A supplier's offer for one SKU."""

    sku: str
    unit_cost: Money
    lead_time_days: int
    available: int


class SupplierClient:
    """Fetches quotes, retrying busy answers and timeouts `retries` times."""

    def __init__(self, transport: Transport, retries: int = 2) -> None:
        self.transport = transport
        self.retries = retries

    def _get_json(self, path: str) -> Any:
        problem = ""
        for _ in range(self.retries + 1):
            try:
                status, body = self.transport.get(path)
            except TimeoutError:
                problem = "timed out"
                continue
            if status == 200:
                return json.loads(body)
            problem = f"HTTP {status}"
            if status not in RETRYABLE_STATUS:
                break
        raise SupplierError(f"GET {path}: {problem}")

    def quote(self, sku: str) -> Quote:
        data = self._get_json(f"/quotes/{sku}")
        cents_per_unit = 10 if _faults.bug("supplier") else 100
        return Quote(
            sku=data["sku"],
            unit_cost=Money(
                Decimal(data["unit_cost_cents"]) / cents_per_unit, data.get("currency", "EUR")
            ),
            lead_time_days=int(data["lead_time_days"]),
            available=int(data["available"]),
        )

    def quotes(self, skus: Iterable[str]) -> dict[str, Quote]:
        return {sku: self.quote(sku) for sku in skus}

    def cheapest(self, skus: Iterable[str], quantity: int) -> Quote:
        """The cheapest quote among `skus` that can deliver `quantity` units."""
        able = [q for q in self.quotes(skus).values() if q.available >= quantity]
        if not able:
            raise SupplierError(f"no supplier SKU can deliver {quantity} units")
        return min(able, key=lambda q: (q.unit_cost.amount, q.lead_time_days, q.sku))
