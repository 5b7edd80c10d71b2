"""VAT rates, net and gross amounts, and invoice breakdowns."""

from decimal import Decimal

import pytest
from _cost import burn
from shopkit import tax
from shopkit.money import Money


@pytest.mark.parametrize(("region", "rate"), sorted(tax.STANDARD_RATES.items()))
def test_standard_rates(region, rate):
    assert tax.rate_for(region) == Decimal(rate)
    assert tax.rate_for(region, "kitchen") == Decimal(rate)
    burn(5)


@pytest.mark.parametrize("category", sorted(tax.REDUCED_CATEGORIES))
@pytest.mark.parametrize("region", ["DE", "FR", "IE"])
def test_reduced_rates_for_books_and_food(region, category):
    assert tax.rate_for(region, category) == Decimal(tax.REDUCED_RATES[region])
    assert tax.rate_for(region, category) < tax.rate_for(region)
    burn(6)


def test_region_codes_ignore_case():
    assert tax.rate_for("de") == tax.rate_for("DE")
    burn(5)


def test_unknown_region_is_refused():
    with pytest.raises(ValueError, match="'US'"):
        tax.rate_for("US")
    burn(5)


def test_tax_on_and_gross():
    net = Money.of("100.00")
    assert tax.tax_on(net, "DE") == Money.of("19.00")
    assert tax.gross(net, "DE", "books") == Money.of("107.00")
    burn(8)


def test_tax_rounds_to_the_cent():
    assert tax.tax_on(Money.of("0.99"), "FR", "food") == Money.of("0.05")  # 5.5 % of 0.99 = 0.05445
    burn(6)


@pytest.mark.parametrize("net", ["0.01", "0.99", "19.95", "1234.56"])
@pytest.mark.parametrize("region", ["DE", "SE"])
def test_net_from_gross_recovers_the_net(net, region):
    gross = tax.gross(Money.of(net), region)
    assert tax.net_from_gross(gross, region) == Money.of(net)
    burn(8)


def test_invoice_breakdown_groups_by_rate():
    lines = [
        (Money.of("10.00"), "books"),
        (Money.of("20.00"), "kitchen"),
        (Money.of("5.00"), "food"),
    ]
    assert tax.breakdown(lines, "DE") == {
        Decimal("0.07"): Money.of("1.05"),
        Decimal("0.19"): Money.of("3.80"),
    }
    burn(10)


def test_breakdown_of_no_lines_is_empty():
    assert tax.breakdown([], "DE") == {}
    burn(5)


def test_yearly_vat_return(catalog):
    """Tax a year of sales line by line and by rate: the two ways agree within rounding."""
    lines = [(p.price * (1 + i % 7), p.category) for i, p in enumerate(catalog)] * 5
    by_line = sum((tax.tax_on(net, "DE", category).amount for net, category in lines), Decimal(0))
    by_rate = sum((m.amount for m in tax.breakdown(lines, "DE").values()), Decimal(0))
    assert abs(by_line - by_rate) <= Decimal("0.005") * len(lines)
    burn(450)
