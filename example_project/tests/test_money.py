"""Money: rounding, arithmetic, allocation and formatting."""

from decimal import Decimal

import pytest
from _cost import burn
from shopkit.money import Money, round_cents, total


@pytest.mark.parametrize(
    ("raw", "rounded"),
    [
        ("1.005", "1.01"),
        ("1.004", "1.00"),
        ("2.675", "2.68"),
        ("0.125", "0.13"),
        ("-1.005", "-1.01"),
        ("-0.004", "0.00"),
        ("19.999", "20.00"),
        ("7", "7.00"),
        ("123456.785", "123456.79"),
        ("0.0050", "0.01"),
    ],
)
def test_commercial_rounding(raw, rounded):
    assert round_cents(Decimal(raw)) == Decimal(rounded)
    burn(5)


def test_amounts_are_rounded_when_made():
    assert Money.of("3.14159").amount == Decimal("3.14")
    burn(5)


def test_floats_are_refused():
    with pytest.raises(TypeError, match="float"):
        Money(0.1)
    burn(5)


def test_addition_and_subtraction():
    assert Money.of("1.10") + Money.of("2.20") == Money.of("3.30")
    assert Money.of("1.10") - Money.of("2.20") == Money.of("-1.10")
    burn(6)


@pytest.mark.parametrize(
    ("factor", "expected"), [(3, "3.30"), (Decimal("0.5"), "0.55"), (Decimal("0.19"), "0.21")]
)
def test_multiplication_rounds(factor, expected):
    assert Money.of("1.10") * factor == Money.of(expected)
    assert factor * Money.of("1.10") == Money.of(expected)
    burn(6)


def test_currencies_do_not_mix():
    with pytest.raises(ValueError, match="EUR with USD"):
        Money.of("1", "EUR") + Money.of("1", "USD")
    burn(5)


def test_ordering():
    assert Money.of("1.99") < Money.of("2.00") <= Money.of("2.00")
    assert max(Money.of("5"), Money.of("12"), Money.of("7")) == Money.of("12")
    burn(6)


def test_negation_and_zero():
    assert -Money.of("4.20") == Money.of("-4.20")
    assert Money.zero("GBP") == Money.of("0", "GBP")
    burn(5)


def test_total_of_nothing_is_zero():
    assert total([]) == Money.zero()
    assert total([], "USD") == Money.zero("USD")
    burn(5)


def test_total_of_many_amounts():
    amounts = [Money.of(f"{n}.{n % 100:02d}") for n in range(1000)]
    assert total(amounts) == Money(sum(a.amount for a in amounts))
    burn(30)


@pytest.mark.parametrize(
    ("amount", "weights", "shares"),
    [
        ("10.00", [1, 1, 1], ["3.34", "3.33", "3.33"]),
        ("0.05", [1, 1], ["0.03", "0.02"]),
        ("100.00", [50, 30, 20], ["50.00", "30.00", "20.00"]),
        ("1.00", [1, 0, 1], ["0.50", "0.00", "0.50"]),
        ("0.01", [1, 1, 1], ["0.01", "0.00", "0.00"]),
        ("7.00", [3, 1], ["5.25", "1.75"]),
        ("9.99", [1, 2], ["3.33", "6.66"]),
        ("0.00", [2, 5], ["0.00", "0.00"]),
    ],
)
def test_allocation_loses_no_cent(amount, weights, shares):
    parts = Money.of(amount).allocate(weights)
    assert parts == [Money.of(s) for s in shares]
    assert total(parts) == Money.of(amount)
    burn(8)


@pytest.mark.parametrize("weights", [[], [0, 0], [1, -1]])
def test_allocation_needs_sensible_weights(weights):
    with pytest.raises(ValueError, match="weights"):
        Money.of("1").allocate(weights)
    burn(5)


def test_negative_amounts_are_not_allocated():
    with pytest.raises(ValueError, match="negative"):
        Money.of("-1").allocate([1, 1])
    burn(5)


@pytest.mark.shadowfarm(priority="low")
@pytest.mark.parametrize(
    ("amount", "currency", "locale", "text"),
    [
        ("1234.5", "EUR", "en", "€1,234.50"),
        ("1234.5", "EUR", "de", "1.234,50 €"),
        ("-0.99", "USD", "en", "-$0.99"),
        ("1000000", "GBP", "en", "£1,000,000.00"),
        ("42", "CHF", "en", "CHF 42.00"),
        ("42", "CHF", "de", "42,00 CHF"),
    ],
)
def test_formatting(amount, currency, locale, text):
    assert Money.of(amount, currency).format(locale) == text
    burn(5)


@pytest.mark.shadowfarm(priority="low")
def test_unknown_locale_is_refused():
    with pytest.raises(ValueError, match="locale"):
        Money.of("1").format("fr")
    burn(5)


@pytest.mark.shadowfarm(priority="low")
def test_str_shows_amount_and_currency():
    assert str(Money.of("5", "USD")) == "5.00 USD"
    burn(5)
