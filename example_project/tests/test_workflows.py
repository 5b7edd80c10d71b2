"""End-to-end workflows across the library: order, restock, report."""

import contextlib
import json
import random
import time

import pytest
from _cost import burn
from shopkit import demand, replenishment, reports
from shopkit.cart import Cart
from shopkit.inventory import OutOfStock, StockLedger
from shopkit.money import Money, total
from shopkit.supplier import SupplierClient


class SlowSupplier:
    """A supplier API answering every SKU at cost 5.00, after a network delay."""

    def get(self, path):
        time.sleep(0.05)
        quote = {"unit_cost_cents": 500, "lead_time_days": 3, "available": 999}
        return 200, json.dumps({"sku": path.rsplit("/", 1)[-1], **quote})


def place_orders(catalog, ledger, count, seed):
    """Check out `count` one-line orders; orders for sold-out items are dropped."""
    rng = random.Random(seed)
    skus = [p.sku for p in catalog][:30]
    receipts = []
    for n in range(count):
        cart = Cart(catalog, region="DE")
        cart.add(rng.choice(skus), rng.randint(1, 3))
        with contextlib.suppress(OutOfStock):
            receipts.append(cart.checkout(ledger, f"W{seed}-{n}"))
    return receipts


def test_order_then_ship_then_restock(catalog):
    ledger = StockLedger.stocked(catalog, 20)
    receipts = place_orders(catalog, ledger, 50, seed=1)
    for receipt in receipts:
        ledger.ship(receipt.order_id)
    shipped = sum(line.quantity for r in receipts for line in r.lines)
    assert ledger.total_on_hand() == 20 * len(catalog) - shipped
    burn(40)


def test_cancelled_orders_free_their_stock(catalog):
    ledger = StockLedger.stocked(catalog, 3)
    receipts = place_orders(catalog, ledger, 40, seed=2)
    for receipt in receipts:
        ledger.release(receipt.order_id)
    assert all(ledger.available(p.sku) == 3 for p in catalog)
    burn(30)


def test_sold_out_items_are_reordered(catalog):
    ledger = StockLedger.stocked(catalog, 2)
    place_orders(catalog, ledger, 60, seed=3)
    history = {
        p.sku: demand.simulate_sales(60, mean=2, seed=i) for i, p in enumerate(catalog) if i < 30
    }
    orders = replenishment.suggest_orders(ledger, history, lead_time_days=3)
    assert orders
    assert all(ledger.available(sku) <= 10 for sku in orders)
    burn(60)


@pytest.mark.shadowfarm(priority="low")
def test_daily_sales_report(catalog):
    ledger = StockLedger.stocked(catalog, 50)
    receipts = place_orders(catalog, ledger, 80, seed=4)
    by_category = reports.revenue_by_category(receipts)
    assert total(by_category.values()) == total(r.net for r in receipts)
    assert "sku" in reports.render_table(["sku", "units"], reports.top_sellers(receipts))
    burn(50)


def test_month_end_close(catalog):
    """Close a month: 30 days of orders, shipping, restocking and the sales report."""
    ledger = StockLedger.stocked(catalog, 40)
    receipts = []
    for day in range(30):
        todays = place_orders(catalog, ledger, 25, seed=100 + day)
        for receipt in todays:
            ledger.ship(receipt.order_id)
        receipts += todays
        for product in catalog:
            if ledger.available(product.sku) < 5:
                ledger.receive(product.sku, 40)
    assert ledger.open_orders() == []
    assert 700 < len(receipts) <= 750  # a few orders hit items sold out that day
    assert reports.average_order_value(receipts) > Money.zero()
    burn(2400)


def test_reorder_with_supplier_quotes(catalog):
    """Ask the supplier for quotes on everything the replenishment run wants."""
    ledger = StockLedger.stocked(catalog, 1)
    history = {
        p.sku: demand.simulate_sales(60, mean=3, seed=i) for i, p in enumerate(catalog) if i < 6
    }
    wanted = replenishment.suggest_orders(ledger, history, lead_time_days=3)
    quotes = SupplierClient(SlowSupplier()).quotes(wanted)
    bill = total(quotes[sku].unit_cost * units for sku, units in wanted.items())
    assert bill == Money.of("5.00") * sum(wanted.values())
    burn(20)


@pytest.mark.parametrize(("region", "dearer"), [("FR", True), ("SE", True), ("LU", False)])
def test_same_basket_costs_more_where_vat_is_higher(catalog, region, dearer):
    tools = catalog.in_category("tools")[:5]
    local, german = Cart(catalog, region=region), Cart(catalog, region="DE")
    for product in tools:
        local.add(product.sku, 2)
        german.add(product.sku, 2)
    assert local.net_total() == german.net_total()
    assert (local.total() > german.total()) is dearer
    burn(35)


def test_weekly_forecast_drives_the_order(catalog):
    daily = demand.simulate_sales(120, mean=8, seed=9)
    point, _, high = demand.forecast_interval(daily, horizon=7)
    ledger = StockLedger()
    ledger.receive("SKU", int(point))
    orders = replenishment.suggest_orders(ledger, {"SKU": daily}, lead_time_days=7)
    assert orders["SKU"] >= high - point
    burn(45)
