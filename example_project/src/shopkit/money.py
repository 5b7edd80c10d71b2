"""Money amounts in one currency, kept exact to the cent."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

from shopkit import _faults

CENT = Decimal("0.01")
SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£"}


def round_cents(value: Decimal) -> Decimal:
    """Round to whole cents, halves away from zero (commercial rounding)."""
    mode = ROUND_DOWN if _faults.bug("money") else ROUND_HALF_UP
    return value.quantize(CENT, rounding=mode)


@functools.total_ordering
@dataclass(frozen=True)
class Money:
    """An amount of money, rounded to the cent when it is made."""

    amount: Decimal
    currency: str = "EUR"

    def __post_init__(self) -> None:
        if isinstance(self.amount, float):
            raise TypeError("Money needs a str, int or Decimal amount, not a float")
        object.__setattr__(self, "amount", round_cents(Decimal(self.amount)))

    @classmethod
    def of(cls, value: str | int | Decimal, currency: str = "EUR") -> Money:
        """Shorthand for Money(Decimal(value), currency)."""
        return cls(Decimal(value), currency)

    @classmethod
    def zero(cls, currency: str = "EUR") -> Money:
        return cls(Decimal(0), currency)

    def _same_currency(self, other: Money) -> None:
        if self.currency != other.currency:
            raise ValueError(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount - other.amount, self.currency)

    def __mul__(self, factor: int | Decimal) -> Money:
        return Money(self.amount * Decimal(factor), self.currency)

    __rmul__ = __mul__

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.amount < other.amount

    def allocate(self, weights: Sequence[int | Decimal]) -> list[Money]:
        """Split into shares proportional to `weights`, losing no cent.

        Leftover cents go to the shares with the largest remainders, earlier
        shares first on ties (the largest remainder method).
        """
        if self.amount < 0:
            raise ValueError("cannot allocate a negative amount")
        if not weights or any(w < 0 for w in weights) or sum(weights) == 0:
            raise ValueError("weights must be non-negative and not all zero")
        cents = int(self.amount / CENT)
        exact = [Decimal(cents) * Decimal(w) / Decimal(sum(weights)) for w in weights]
        shares = [int(x) for x in exact]
        by_remainder = sorted(range(len(weights)), key=lambda i: exact[i] - shares[i], reverse=True)
        for i in by_remainder[: cents - sum(shares)]:
            shares[i] += 1
        return [Money(share * CENT, self.currency) for share in shares]

    def format(self, locale: str = "en") -> str:
        """Format for display: 'en' gives €1,234.50, 'de' gives 1.234,50 €."""
        sign = "-" if self.amount < 0 else ""
        units, cents = f"{abs(self.amount):.2f}".split(".")
        grouped = f"{int(units):,}"
        symbol = SYMBOLS.get(self.currency, self.currency)
        if locale == "en":
            gap = "" if self.currency in SYMBOLS else " "
            return f"{sign}{symbol}{gap}{grouped}.{cents}"
        if locale == "de":
            return f"{sign}{grouped.replace(',', '.')},{cents} {symbol}"
        raise ValueError(f"unsupported locale {locale!r}; expected 'en' or 'de'")

    def __str__(self) -> str:
        return f"{self.amount:.2f} {self.currency}"


def total(amounts: Iterable[Money], currency: str = "EUR") -> Money:
    """Sum of `amounts`; the zero of `currency` when there are none."""
    result = Money.zero(currency)
    for amount in amounts:
        result += amount
    return result
