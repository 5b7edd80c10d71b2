"""Selling prices: quantity breaks, customer tiers, coupons and margins."""

from decimal import Decimal

import pytest
from _cost import burn
from shopkit import _faults, pricing
from shopkit.catalog import Product
from shopkit.money import Money

LAMP = Product("LAMP", "Desk Lamp", "home", Money.of("40.00"))


class TestQuantityBreaks:
    @pytest.mark.parametrize(
        ("quantity", "rate"),
        [
            (1, "0"), (9, "0"),
            (10, "0.05"), (11, "0.05"), (49, "0.05"),
            (50, "0.10"), (51, "0.10"), (99, "0.10"),
            (100, "0.15"), (101, "0.15"), (1000, "0.15"),
        ],
    )  # fmt: skip
    def test_discount_rate(self, quantity, rate):
        assert pricing.quantity_discount(quantity) == Decimal(rate)
        burn(5)

    @pytest.mark.parametrize("quantity", [0, -1])
    def test_quantity_must_be_positive(self, quantity):
        with pytest.raises(ValueError, match="at least 1"):
            pricing.quantity_discount(quantity)
        burn(5)

    @pytest.mark.parametrize(
        ("quantity", "unit"), [(1, "40.00"), (10, "38.00"), (50, "36.00"), (100, "34.00")]
    )
    def test_unit_price_at_each_break(self, quantity, unit):
        assert pricing.unit_price(LAMP, quantity) == Money.of(unit)
        burn(8)

    def test_breaks_are_ordered_largest_first(self):
        minimums = [minimum for minimum, _ in pricing.QUANTITY_BREAKS]
        assert minimums == sorted(minimums, reverse=True)
        burn(5)


@pytest.mark.parametrize(
    ("tier", "unit"), [("retail", "40.00"), ("trade", "36.80"), ("partner", "35.20")]
)
def test_tier_prices(tier, unit):
    assert pricing.unit_price(LAMP, 1, tier) == Money.of(unit)
    burn(8)


def test_unknown_tier_lists_the_known_ones():
    with pytest.raises(ValueError, match="partner"):
        pricing.tier_discount("gold")
    burn(5)


def test_tier_and_quantity_discounts_multiply():
    # 40.00 * 0.90 * 0.88 = 31.68
    assert pricing.unit_price(LAMP, 60, "partner") == Money.of("31.68")
    burn(10)


def test_line_price_multiplies_the_rounded_unit_price():
    mug = Product("MUG", "Mug", "kitchen", Money.of("8.50"))
    assert pricing.unit_price(mug, 10) == Money.of("8.08")
    assert pricing.line_price(mug, 10) == Money.of("80.80")
    burn(10)


@pytest.mark.parametrize(("code", "rate"), sorted(pricing.COUPONS.items()))
def test_coupon_rates(code, rate):
    assert pricing.coupon_rate(code) == rate
    burn(5)


def test_apply_coupon():
    assert pricing.apply_coupon(Money.of("80.00"), "STAFF25") == Money.of("60.00")
    assert pricing.apply_coupon(Money.of("80.00"), None) == Money.of("80.00")
    burn(6)


def test_unknown_coupon_is_refused():
    with pytest.raises(ValueError, match="BOGUS"):
        pricing.apply_coupon(Money.of("1.00"), "BOGUS")
    burn(5)


@pytest.mark.parametrize(
    ("price", "cost", "margin"),
    [
        ("40.00", "30.00", "0.2500"),
        ("9.99", "9.99", "0.0000"),
        ("3.00", "4.00", "-0.3333"),
        ("7.00", "2.10", "0.7000"),
    ],
)
def test_margin(price, cost, margin):
    assert pricing.margin(Money.of(price), Money.of(cost)) == Decimal(margin)
    burn(6)


def test_margin_needs_a_price():
    with pytest.raises(ValueError, match="positive price"):
        pricing.margin(Money.zero(), Money.of("1"))
    burn(5)


def test_price_list_for_a_whole_catalogue(catalog):
    """Price every product at every break and tier: prices never go up with quantity."""
    for product in catalog:
        for tier in pricing.TIER_DISCOUNTS:
            prices = [pricing.unit_price(product, q, tier) for q in (1, 10, 50, 100)]
            assert prices == sorted(prices, reverse=True)
    burn(250)


if _faults.ACTIVE.new:

    def test_coupon_codes_are_case_insensitive():
        """A test just written for a reported bug (collected only with EXAMPLE_FAULTS=new)."""
        assert pricing.coupon_rate("spring10") == Decimal("0.10")
