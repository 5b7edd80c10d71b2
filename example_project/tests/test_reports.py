"""Sales reports: revenue by category, top sellers and text tables."""

import random
from decimal import Decimal

import pytest
from _cost import burn
from shopkit import reports
from shopkit.cart import Cart
from shopkit.demand import simulate_sales
from shopkit.inventory import StockLedger
from shopkit.money import total


@pytest.fixture(scope="module")
def quarter_receipts(catalog):
    """A quarter's 250 orders checked out against the demo catalogue."""
    rng = random.Random(42)
    skus = [p.sku for p in catalog][:60]
    ledger = StockLedger.stocked(catalog, 10_000)
    receipts = []
    for n in range(250):
        cart = Cart(catalog, region=rng.choice(["DE", "FR", "IT"]))
        for sku in rng.sample(skus, rng.randint(1, 4)):
            cart.add(sku, rng.randint(1, 6))
        receipts.append(cart.checkout(ledger, f"Q-{n:03d}"))
    burn(150)
    return receipts


def test_revenue_by_category_adds_up_to_net_sales(quarter_receipts):
    by_category = reports.revenue_by_category(quarter_receipts)
    assert total(by_category.values()) == total(r.net for r in quarter_receipts)
    burn(15)


def test_revenue_categories_are_sorted(quarter_receipts):
    assert list(reports.revenue_by_category(quarter_receipts)) == sorted(
        {line.product.category for r in quarter_receipts for line in r.lines}
    )
    burn(10)


def test_revenue_of_no_receipts_is_empty():
    assert reports.revenue_by_category([]) == {}
    burn(5)


def test_units_by_sku_counts_quantities(quarter_receipts):
    units = reports.units_by_sku(quarter_receipts)
    assert sum(units.values()) == sum(line.quantity for r in quarter_receipts for line in r.lines)
    burn(12)


@pytest.mark.parametrize("n", [1, 3, 5, 10])
def test_top_sellers_sell_the_most(quarter_receipts, n):
    units = reports.units_by_sku(quarter_receipts)
    top = reports.top_sellers(quarter_receipts, n)
    assert len(top) == n
    assert [count for _, count in top] == sorted(units.values(), reverse=True)[:n]
    burn(12)


def test_top_seller_ties_go_by_sku(quarter_receipts):
    top = reports.top_sellers(quarter_receipts, 60)
    assert top == sorted(top, key=lambda item: (-item[1], item[0]))
    burn(10)


def test_average_order_value(quarter_receipts):
    average = reports.average_order_value(quarter_receipts)
    assert min(r.total for r in quarter_receipts) < average < max(r.total for r in quarter_receipts)
    rounding_error = average * len(quarter_receipts) - total(r.total for r in quarter_receipts)
    assert abs(rounding_error.amount) <= Decimal("1.25")  # half a cent per order at most
    burn(15)


def test_average_of_no_orders_is_refused():
    with pytest.raises(ValueError, match="no receipts"):
        reports.average_order_value([])
    burn(5)


def test_demand_rows_summarise_each_sku():
    history = {"B": simulate_sales(60, mean=4, seed=1), "A": [1, 2, 3, 4]}
    rows = reports.demand_rows(history)
    assert [row[0] for row in rows] == ["A", "B"]
    assert rows[0] == ("A", 10, 2.5, 1.29, 3.85)
    burn(20)


@pytest.mark.shadowfarm(priority="low")
def test_table_alignment():
    table = reports.render_table(["sku", "units"], [("MUG", 7), ("KETTLE", 120)])
    assert table.splitlines() == [
        "sku     units",
        "------  -----",
        "MUG         7",
        "KETTLE    120",
    ]
    burn(8)


@pytest.mark.shadowfarm(priority="low")
def test_table_without_rows_is_just_the_header():
    assert reports.render_table(["a", "bb"], []) == "a  bb\n-  --"
    burn(5)


@pytest.mark.shadowfarm(priority="low")
def test_monthly_report_renders_every_category(quarter_receipts):
    rows = [(c, str(m)) for c, m in reports.revenue_by_category(quarter_receipts).items()]
    table = reports.render_table(["category", "net revenue"], rows)
    assert len(table.splitlines()) == len(rows) + 2
    assert all(category in table for category, _ in rows)
    burn(40)


def test_demand_report_for_the_catalogue(catalog):
    """A year of demand for 80 SKUs, summarised and rendered."""
    history = {
        p.sku: simulate_sales(365, mean=1 + i % 9, seed=i) for i, p in enumerate(catalog) if i < 80
    }
    rows = reports.demand_rows(history)
    table = reports.render_table(["sku", "units", "mean", "std", "p95"], rows)
    assert len(table.splitlines()) == 82
    assert all(row[2] <= row[4] + row[3] * 3 for row in rows)
    burn(400)
