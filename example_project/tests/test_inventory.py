"""Stock ledger: receipts, reservations, shipping and snapshots."""

import json
import os

import pytest
from _cost import burn
from shopkit import _faults
from shopkit.inventory import OutOfStock, StockLedger, StockLevel


@pytest.fixture
def ledger():
    ledger = StockLedger()
    ledger.receive("MUG", 10)
    ledger.receive("PAN", 4)
    return ledger


def test_unknown_sku_has_no_stock():
    assert StockLedger().level("NOPE") == StockLevel(0, 0)
    burn(5)


@pytest.mark.parametrize("batches", [[1], [5, 5], [3, 0, 3], [100, 1, 10, 2]])
def test_receipts_add_up(batches):
    ledger = StockLedger()
    for quantity in filter(None, batches):
        ledger.receive("MUG", quantity)
    assert ledger.available("MUG") == sum(batches)
    burn(6)


@pytest.mark.parametrize("quantity", [0, -3])
def test_receipts_must_be_positive(quantity):
    with pytest.raises(ValueError, match="positive"):
        StockLedger().receive("MUG", quantity)
    burn(5)


def test_level_is_a_copy(ledger):
    ledger.level("MUG").on_hand = 0
    assert ledger.available("MUG") == 10
    burn(5)


def test_stocked_from_catalog(catalog):
    ledger = StockLedger.stocked(catalog, 3)
    assert ledger.total_on_hand() == 3 * len(catalog)
    assert all(ledger.available(p.sku) == 3 for p in catalog)
    burn(30)


class TestReservations:
    def test_reserve_reduces_availability(self, ledger):
        ledger.reserve("O-1", {"MUG": 3, "PAN": 1})
        assert ledger.level("MUG") == StockLevel(on_hand=10, reserved=3)
        assert ledger.available("PAN") == 3
        burn(10)

    def test_reserve_is_all_or_nothing(self, ledger):
        with pytest.raises(OutOfStock, match="PAN: requested 5, only 4 available"):
            ledger.reserve("O-1", {"MUG": 3, "PAN": 5})
        assert ledger.available("MUG") == 10
        assert ledger.open_orders() == []
        burn(10)

    def test_order_ids_are_unique(self, ledger):
        ledger.reserve("O-1", {"MUG": 1})
        with pytest.raises(ValueError, match="O-1"):
            ledger.reserve("O-1", {"MUG": 1})
        burn(8)

    def test_release_returns_the_units(self, ledger):
        ledger.reserve("O-1", {"MUG": 6})
        ledger.release("O-1")
        assert ledger.available("MUG") == 10
        assert ledger.open_orders() == []
        burn(10)

    def test_release_then_reserve_again(self, ledger):
        ledger.reserve("O-1", {"PAN": 4})
        ledger.release("O-1")
        ledger.reserve("O-2", {"PAN": 4})
        assert ledger.open_orders() == ["O-2"]
        burn(10)

    def test_ship_takes_units_out(self, ledger):
        ledger.reserve("O-1", {"MUG": 2})
        ledger.ship("O-1")
        assert ledger.level("MUG") == StockLevel(on_hand=8, reserved=0)
        burn(10)

    def test_unknown_order_cannot_ship(self, ledger):
        with pytest.raises(KeyError):
            ledger.ship("O-404")
        burn(5)

    @pytest.mark.parametrize("orders", [1, 2, 5, 10])
    def test_many_small_orders(self, ledger, orders):
        for n in range(orders):
            ledger.reserve(f"O-{n}", {"MUG": 1})
        assert ledger.available("MUG") == 10 - orders
        for n in range(0, orders, 2):
            ledger.release(f"O-{n}")
        assert ledger.available("MUG") == 10 - orders // 2
        burn(12)


def test_ledger_snapshot_roundtrip(ledger):
    """A snapshot survives a JSON round trip and restores an identical ledger."""
    ledger.reserve("O-1", {"MUG": 2})
    encoded = json.dumps(ledger.snapshot())
    if _faults.ACTIVE.crash:
        os._exit(3)  # planted fault: the process dies like a segfaulting native codec
    restored = StockLedger.from_snapshot(json.loads(encoded))
    assert restored.snapshot() == ledger.snapshot()
    restored.ship("O-1")
    assert restored.available("MUG") == 8
    burn(20)


def test_snapshot_is_sorted_plain_data(ledger):
    ledger.reserve("O-9", {"PAN": 1})
    assert ledger.snapshot() == {
        "levels": {"MUG": [10, 0], "PAN": [4, 1]},
        "orders": {"O-9": {"PAN": 1}},
    }
    burn(8)


def test_out_of_stock_carries_the_numbers():
    error = OutOfStock("MUG", 5, 2)
    assert (error.sku, error.requested, error.available) == ("MUG", 5, 2)
    assert str(error) == "MUG: requested 5, only 2 available"
    burn(5)


def test_busy_day_of_orders(catalog):
    """A day of 400 orders: reserve, ship most, release the rest."""
    ledger = StockLedger.stocked(catalog, 50)
    skus = [p.sku for p in catalog]
    for n in range(400):
        ledger.reserve(f"D-{n}", {skus[n % len(skus)]: 1 + n % 3})
    for n in range(400):
        if n % 10 == 0:
            ledger.release(f"D-{n}")
        else:
            ledger.ship(f"D-{n}")
    assert ledger.open_orders() == []
    assert ledger.total_on_hand() == 50 * len(catalog) - sum(
        1 + n % 3 for n in range(400) if n % 10
    )
    burn(300)
