"""Reorder points, safety stock and order quantities, and a policy simulator."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from shopkit import _faults
from shopkit.demand import service_factor, summarize
from shopkit.inventory import StockLedger


def safety_stock(daily_std: float, lead_time_days: float, service_level: float = 0.95) -> float:
    """Buffer stock covering demand variability during the lead time."""
    exposure = lead_time_days if _faults.bug("replenishment") else math.sqrt(lead_time_days)
    return service_factor(service_level) * daily_std * exposure


def reorder_point(
    daily_mean: float, daily_std: float, lead_time_days: float, service_level: float = 0.95
) -> int:
    """Stock level at which to reorder: lead-time demand plus safety stock."""
    return math.ceil(
        daily_mean * lead_time_days + safety_stock(daily_std, lead_time_days, service_level)
    )


def economic_order_quantity(annual_demand: float, order_cost: float, holding_cost: float) -> int:
    """Order size minimising ordering plus holding cost (Wilson's formula)."""
    if annual_demand <= 0 or order_cost <= 0 or holding_cost <= 0:
        raise ValueError("demand and costs must be positive")
    return math.ceil(math.sqrt(2 * annual_demand * order_cost / holding_cost))


@dataclass(frozen=True)
class PolicyResult:
    """How a (reorder point, order quantity) policy did over a sales history."""

    fill_rate: float
    stockout_days: int
    orders_placed: int
    average_stock: float


def simulate_policy(
    daily: Sequence[int],
    reorder_at: int,
    order_quantity: int,
    lead_time_days: int,
    initial_stock: int,
) -> PolicyResult:
    """Replay a sales history day by day under a reorder-point policy."""
    stock, pipeline = initial_stock, [0] * (lead_time_days + 1)
    served = demanded = stockout_days = orders = stock_days = 0
    for day, demand in enumerate(daily):
        stock += pipeline[day % len(pipeline)]
        pipeline[day % len(pipeline)] = 0
        sold = min(stock, demand)
        stock -= sold
        served, demanded = served + sold, demanded + demand
        stockout_days += sold < demand
        if stock + sum(pipeline) <= reorder_at:
            pipeline[(day + lead_time_days) % len(pipeline)] += order_quantity
            orders += 1
        stock_days += stock
    return PolicyResult(
        fill_rate=served / demanded if demanded else 1.0,
        stockout_days=stockout_days,
        orders_placed=orders,
        average_stock=stock_days / max(len(daily), 1),
    )


def suggest_orders(
    ledger: StockLedger,
    history: Mapping[str, Sequence[int]],
    lead_time_days: int,
    service_level: float = 0.95,
    order_cost: float = 25.0,
    holding_cost: float = 2.0,
) -> dict[str, int]:
    """Units to order now for each SKU whose available stock is at its reorder point."""
    orders = {}
    for sku, daily in sorted(history.items()):
        summary = summarize(daily)
        point = reorder_point(summary.mean, summary.std, lead_time_days, service_level)
        available = ledger.available(sku)
        if available <= point and summary.total > 0:
            eoq = economic_order_quantity(summary.mean * 365, order_cost, holding_cost)
            orders[sku] = max(eoq, point - available)
    return orders
