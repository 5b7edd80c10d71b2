"""Cart contents, shipping and checkout totals."""

import random
from decimal import Decimal

import pytest
from _cost import burn
from shopkit import tax
from shopkit.cart import FREE_SHIPPING_FROM, SHIPPING_FEE, Cart
from shopkit.catalog import Catalog, Product
from shopkit.inventory import OutOfStock, StockLedger
from shopkit.money import Money


def product(sku, price, category="kitchen"):
    return Product(sku=sku, name=f"Test {sku.title()}", category=category, price=Money.of(price))


@pytest.fixture
def shop():
    return Catalog(
        [
            product("MUG", "8.50"),
            product("PAN", "34.00"),
            product("BOOK", "20.00", "books"),
            product("KNIFE", "50.00"),
            product("TEA", "4.20", "food"),
        ]
    )


@pytest.fixture
def cart(shop):
    return Cart(shop, region="DE")


@pytest.fixture
def ledger(shop):
    return StockLedger.stocked(shop, 5)


def test_empty_cart_costs_nothing(cart):
    assert cart.total() == Money.zero()
    assert cart.shipping() == Money.zero()
    burn(6)


def test_add_accumulates_quantity(cart):
    cart.add("MUG")
    cart.add("MUG", 2)
    assert cart.quantity("MUG") == 3
    burn(8)


def test_add_unknown_sku_raises(cart):
    with pytest.raises(KeyError, match="NOPE"):
        cart.add("NOPE")
    burn(5)


@pytest.mark.parametrize("quantity", [0, -1, -5])
def test_add_rejects_non_positive_quantity(cart, quantity):
    with pytest.raises(ValueError, match="at least 1"):
        cart.add("MUG", quantity)
    burn(5)


def test_checkout_soak_many_baskets(catalog):
    """A randomized soak test: 300 baskets checked out against one ledger."""
    rng = random.Random(1)
    skus = [p.sku for p in catalog]
    ledger = StockLedger.stocked(catalog, 1000)
    for n in range(300):
        cart = Cart(catalog, region=rng.choice(["DE", "FR", "NL"]))
        for sku in rng.sample(skus, 3):
            cart.add(sku, rng.randint(1, 12))
        expected = cart.net_total() + cart.tax_total() + cart.shipping()
        assert cart.checkout(ledger, f"SOAK-{n}").total == expected
    assert len(ledger.open_orders()) == 300
    burn(1500)


def test_set_quantity_zero_removes_line(cart):
    cart.add("PAN", 2)
    cart.set_quantity("PAN", 0)
    assert cart.lines == ()
    burn(8)


def test_lines_are_sorted_by_sku(cart):
    for sku in ("TEA", "MUG", "BOOK"):
        cart.add(sku)
    assert [line.product.sku for line in cart.lines] == ["BOOK", "MUG", "TEA"]
    burn(10)


def test_quantity_break_applies_to_line(cart):
    cart.add("MUG", 10)
    assert cart.net_total() == Money.of("80.80")  # 8.50 less 5 % is 8.075 -> 8.08
    burn(12)


def test_trade_customers_pay_less(shop):
    cart = Cart(shop, tier="trade")
    cart.add("MUG")
    assert cart.net_total() == Money.of("7.82")
    burn(10)


def test_books_get_reduced_vat(cart):
    cart.add("BOOK")
    assert cart.tax_total() == Money.of("1.40")
    burn(10)


def test_shipping_charged_below_threshold(cart):
    cart.add("MUG")
    assert cart.shipping() == SHIPPING_FEE
    burn(8)


def test_free_shipping_from_threshold(cart):
    cart.add("KNIFE")
    assert cart.net_total() == FREE_SHIPPING_FROM
    assert cart.shipping() == Money.zero()
    burn(8)


def test_free_shipping_above_threshold(cart):
    cart.add("PAN", 2)
    assert cart.shipping() == Money.zero()
    burn(8)


@pytest.mark.shadowfarm(priority="critical")
def test_checkout_total_is_net_plus_tax_plus_shipping(cart, ledger):
    cart.add("MUG", 2)  # 17.00 net, 3.23 VAT at 19 %
    cart.add("BOOK")  # 20.00 net, 1.40 VAT at 7 %
    receipt = cart.checkout(ledger, "A-1")
    assert receipt.net == Money.of("37.00")
    assert receipt.tax == Money.of("4.63")
    assert receipt.shipping == Money.of("4.90")
    assert receipt.total == Money.of("46.53")
    burn(25)


@pytest.mark.shadowfarm(priority="critical")
def test_checkout_reserves_stock_and_empties_cart(cart, ledger):
    cart.add("PAN", 3)
    cart.checkout(ledger, "A-2")
    assert ledger.available("PAN") == 2
    assert ledger.open_orders() == ["A-2"]
    assert cart.lines == ()
    burn(20)


def test_checkout_of_empty_cart_is_refused(cart, ledger):
    with pytest.raises(ValueError, match="empty"):
        cart.checkout(ledger, "A-3")
    burn(6)


def test_checkout_out_of_stock_reserves_nothing(cart, ledger):
    cart.add("MUG", 1)
    cart.add("TEA", 9)
    with pytest.raises(OutOfStock) as excinfo:
        cart.checkout(ledger, "A-4")
    assert excinfo.value.sku == "TEA"
    assert ledger.available("MUG") == 5
    assert cart.quantity("TEA") == 9
    burn(15)


class TestCoupons:
    def test_coupon_reduces_net(self, cart):
        cart.add("PAN")
        cart.apply_coupon("SPRING10")
        assert cart.net_total() == Money.of("30.60")
        burn(10)

    def test_unknown_coupon_is_refused(self, cart):
        with pytest.raises(ValueError, match="unknown coupon"):
            cart.apply_coupon("FREEBIE")
        assert cart.coupon is None
        burn(6)

    def test_coupon_applies_before_tax(self, cart):
        cart.add("PAN")
        cart.apply_coupon("SPRING10")
        assert cart.tax_total() == Money.of("5.81")  # 19 % of 30.60
        burn(12)

    def test_coupon_stacks_with_quantity_break(self, cart):
        cart.add("MUG", 10)
        cart.apply_coupon("SPRING10")
        assert cart.net_total() == Money.of("72.72")
        burn(14)


@pytest.mark.parametrize("region", ["AT", "DE", "FR", "IT", "LU", "SE"])
def test_vat_follows_the_region(shop, region):
    cart = Cart(shop, region=region)
    cart.add("KNIFE")
    assert cart.tax_total() == Money.of("50.00") * Decimal(tax.STANDARD_RATES[region])
    burn(10)


def test_unknown_region_is_refused(shop):
    with pytest.raises(ValueError, match="region"):
        Cart(shop, region="XX")
    burn(5)


def test_unknown_tier_is_refused(shop):
    with pytest.raises(ValueError, match="tier"):
        Cart(shop, tier="vip")
    burn(5)
