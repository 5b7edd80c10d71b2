"""Selling prices: quantity breaks, customer tiers and coupon codes."""

from __future__ import annotations

from decimal import Decimal

from shopkit import _faults
from shopkit.catalog import Product
from shopkit.money import Money

# (minimum quantity, discount), largest first.
QUANTITY_BREAKS = ((100, Decimal("0.15")), (50, Decimal("0.10")), (10, Decimal("0.05")))
TIER_DISCOUNTS = {"retail": Decimal("0"), "trade": Decimal("0.08"), "partner": Decimal("0.12")}
COUPONS = {"WELCOME5": Decimal("0.05"), "SPRING10": Decimal("0.10"), "STAFF25": Decimal("0.25")}


def quantity_discount(quantity: int) -> Decimal:
    """Discount rate earned by buying `quantity` units of one product."""
    if quantity < 1:
        raise ValueError(f"quantity must be at least 1, got {quantity}")
    for minimum, rate in QUANTITY_BREAKS:
        reached = quantity > minimum if _faults.bug("pricing") else quantity >= minimum
        if reached:
            return rate
    return Decimal("0")


def tier_discount(tier: str) -> Decimal:
    """Discount rate of a customer tier."""
    try:
        return TIER_DISCOUNTS[tier]
    except KeyError:
        raise ValueError(
            f"unknown customer tier {tier!r}; expected one of {sorted(TIER_DISCOUNTS)}"
        ) from None


def unit_price(product: Product, quantity: int = 1, tier: str = "retail") -> Money:
    """Net price of one unit when buying `quantity` units as a `tier` customer."""
    factor = (1 - quantity_discount(quantity)) * (1 - tier_discount(tier))
    return product.price * factor


def line_price(product: Product, quantity: int, tier: str = "retail") -> Money:
    """Net price of a cart line: the rounded unit price times the quantity."""
    return unit_price(product, quantity, tier) * quantity


def coupon_rate(code: str) -> Decimal:
    """Discount rate of a coupon code."""
    try:
        return COUPONS[code]
    except KeyError:
        raise ValueError(f"unknown coupon code {code!r}") from None


def apply_coupon(amount: Money, code: str | None) -> Money:
    """`amount` after the coupon `code` (unchanged when there is none)."""
    if code is None:
        return amount
    return amount * (1 - coupon_rate(code))


def margin(price: Money, cost: Money) -> Decimal:
    """Gross margin as a fraction of the price, to four places."""
    if price.amount <= 0:
        raise ValueError("margin needs a positive price")
    return ((price - cost).amount / price.amount).quantize(Decimal("0.0001"))
