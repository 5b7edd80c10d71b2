"""Sales reports from checkout receipts and demand history."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from shopkit import _faults
from shopkit.cart import Receipt
from shopkit.demand import summarize
from shopkit.money import Money, total


def revenue_by_category(receipts: Iterable[Receipt]) -> dict[str, Money]:
    """Net revenue per product category, categories in alphabetical order."""
    nets: dict[str, list[Money]] = {}
    for receipt in receipts:
        for line in receipt.lines:
            nets.setdefault(line.product.category, []).append(line.net)
    return {category: total(amounts) for category, amounts in sorted(nets.items())}


def units_by_sku(receipts: Iterable[Receipt]) -> Counter[str]:
    units: Counter[str] = Counter()
    for receipt in receipts:
        for line in receipt.lines:
            units[line.product.sku] += line.quantity
    return units


def top_sellers(receipts: Iterable[Receipt], n: int = 5) -> list[tuple[str, int]]:
    """The `n` SKUs that sold the most units, most first (ties by SKU)."""
    direction = 1 if _faults.bug("reports") else -1
    ranked = sorted(units_by_sku(receipts).items(), key=lambda item: (direction * item[1], item[0]))
    return ranked[:n]


def average_order_value(receipts: Sequence[Receipt]) -> Money:
    """Mean gross total per order."""
    if not receipts:
        raise ValueError("no receipts")
    summed = total(receipt.total for receipt in receipts)
    return Money(summed.amount / len(receipts), summed.currency)


def demand_rows(history: Mapping[str, Sequence[int]]) -> list[tuple[str, int, float, float, float]]:
    """(SKU, units, mean, std, p95) per SKU, for a demand table."""
    rows = []
    for sku, daily in sorted(history.items()):
        s = summarize(daily)
        rows.append((sku, s.total, round(s.mean, 2), round(s.std, 2), round(s.p95, 2)))
    return rows


def render_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A plain-text table: text left-aligned, numbers right-aligned."""
    body = [list(row) for row in rows]
    numeric = [
        bool(body) and all(isinstance(row[i], int | float) for row in body)
        for i in range(len(headers))
    ]
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in body]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        parts = [
            c.rjust(w) if num else c.ljust(w)
            for c, w, num in zip(row, widths, numeric, strict=True)
        ]
        lines.append("  ".join(parts).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
