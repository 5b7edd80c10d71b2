"""Value-added tax by region, for net and gross amounts."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from shopkit import _faults
from shopkit.money import Money, total

STANDARD_RATES = {
    "AT": "0.20",
    "BE": "0.21",
    "DE": "0.19",
    "ES": "0.21",
    "FR": "0.20",
    "IE": "0.23",
    "IT": "0.22",
    "LU": "0.17",
    "NL": "0.21",
    "PL": "0.23",
    "PT": "0.23",
    "SE": "0.25",
}
REDUCED_RATES = {
    "AT": "0.10",
    "BE": "0.06",
    "DE": "0.07",
    "ES": "0.04",
    "FR": "0.055",
    "IE": "0.135",
    "IT": "0.04",
    "LU": "0.03",
    "NL": "0.09",
    "PL": "0.05",
    "PT": "0.06",
    "SE": "0.06",
}
REDUCED_CATEGORIES = frozenset({"books", "food"})


def rate_for(region: str, category: str | None = None) -> Decimal:
    """VAT rate in `region` for a product of `category`."""
    region = region.upper()
    if region not in STANDARD_RATES:
        raise ValueError(f"no VAT rates for region {region!r}")
    reduced = category in REDUCED_CATEGORIES and not _faults.bug("tax")
    return Decimal((REDUCED_RATES if reduced else STANDARD_RATES)[region])


def tax_on(net: Money, region: str, category: str | None = None) -> Money:
    """VAT due on a net amount."""
    return net * rate_for(region, category)


def gross(net: Money, region: str, category: str | None = None) -> Money:
    """Net amount plus its VAT."""
    return net + tax_on(net, region, category)


def net_from_gross(amount: Money, region: str, category: str | None = None) -> Money:
    """The net amount contained in a gross (tax-inclusive) amount."""
    return Money(amount.amount / (1 + rate_for(region, category)), amount.currency)


def breakdown(lines: Iterable[tuple[Money, str]], region: str) -> dict[Decimal, Money]:
    """VAT per rate for (net amount, category) lines, as printed on an invoice."""
    by_rate: dict[Decimal, list[Money]] = {}
    for net, category in lines:
        by_rate.setdefault(rate_for(region, category), []).append(net)
    return {rate: total(nets) * rate for rate, nets in sorted(by_rate.items())}
