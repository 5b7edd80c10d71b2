"""Safety stock, reorder points, order sizes and policy simulation."""

import math

import pytest
from _cost import burn
from shopkit import demand, replenishment
from shopkit.inventory import StockLedger


@pytest.mark.parametrize(("level", "z"), [(0.9, 1.2816), (0.95, 1.6449), (0.99, 2.3263)])
@pytest.mark.parametrize("lead_time", [1, 4])
def test_safety_stock_grows_with_the_root_of_lead_time(level, z, lead_time):
    expected = z * 3.0 * math.sqrt(lead_time)
    assert replenishment.safety_stock(3.0, lead_time, level) == pytest.approx(expected, rel=1e-4)
    burn(8)


def test_no_variability_needs_no_safety_stock():
    assert replenishment.safety_stock(0.0, 7) == 0.0
    burn(5)


def test_reorder_point_rounds_up():
    # 4/day over 5 days is 20, plus 1.6449 * 2 * sqrt(5) = 7.36
    assert replenishment.reorder_point(4, 2, 5) == 28
    burn(6)


@pytest.mark.parametrize(
    ("annual", "order_cost", "holding", "eoq"),
    [(1000, 50, 2, 224), (365, 25, 2, 96), (5000, 10, 0.5, 448), (12, 100, 10, 16)],
)
def test_economic_order_quantity(annual, order_cost, holding, eoq):
    assert replenishment.economic_order_quantity(annual, order_cost, holding) == eoq
    burn(6)


def test_order_quantity_needs_positive_inputs():
    with pytest.raises(ValueError, match="positive"):
        replenishment.economic_order_quantity(0, 10, 1)
    burn(5)


def test_policy_without_demand_never_orders():
    result = replenishment.simulate_policy(
        [0] * 30, reorder_at=5, order_quantity=10, lead_time_days=3, initial_stock=20
    )
    assert result == replenishment.PolicyResult(1.0, 0, 0, 20.0)
    burn(8)


def test_policy_that_runs_dry():
    result = replenishment.simulate_policy(
        [5] * 10, reorder_at=0, order_quantity=1, lead_time_days=2, initial_stock=10
    )
    assert result.stockout_days == 8
    assert result.fill_rate < 0.5
    burn(8)


def test_policy_simulation_full_year():
    """Simulate a year of 40 SKUs under their computed policies: fill rates near target."""
    fill_rates = []
    for seed in range(40):
        daily = demand.simulate_sales(365, mean=3 + seed % 10, seed=seed)
        summary = demand.summarize(daily)
        point = replenishment.reorder_point(summary.mean, summary.std, 5, 0.95)
        quantity = replenishment.economic_order_quantity(summary.total, 30, 1.5)
        result = replenishment.simulate_policy(daily.tolist(), point, quantity, 5, point + quantity)
        fill_rates.append(result.fill_rate)
    assert min(fill_rates) > 0.93
    burn(1900)


def test_higher_service_levels_hold_more_stock():
    daily = demand.simulate_sales(365, mean=6, seed=11).tolist()
    stocks = []
    for level in (0.8, 0.95, 0.99):
        point = replenishment.reorder_point(6, 4, 4, level)
        stocks.append(replenishment.simulate_policy(daily, point, 60, 4, point + 60).average_stock)
    assert stocks == sorted(stocks)
    burn(150)


@pytest.fixture
def history():
    return {
        "FAST": demand.simulate_sales(90, mean=20, seed=1),
        "SLOW": demand.simulate_sales(90, mean=1, seed=2),
        "DEAD": [0] * 90,
    }


def test_suggest_orders_only_for_low_stock(history):
    ledger = StockLedger()
    ledger.receive("FAST", 30)
    ledger.receive("SLOW", 500)
    orders = replenishment.suggest_orders(ledger, history, lead_time_days=4)
    assert list(orders) == ["FAST"]
    assert orders["FAST"] >= replenishment.reorder_point(20, 10, 4) - 30
    burn(20)


def test_suggested_quantity_is_at_least_the_gap(history):
    orders = replenishment.suggest_orders(StockLedger(), history, lead_time_days=30)
    assert set(orders) == {"FAST", "SLOW"}
    summary = demand.summarize(history["FAST"])
    assert orders["FAST"] >= replenishment.reorder_point(summary.mean, summary.std, 30)
    burn(20)
