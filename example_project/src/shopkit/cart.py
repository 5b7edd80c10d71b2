"""Shopping cart and checkout: net prices, VAT, shipping and stock."""

from __future__ import annotations

from dataclasses import dataclass

from shopkit import _faults, pricing, tax
from shopkit.catalog import Catalog, Product
from shopkit.inventory import StockLedger
from shopkit.money import Money, total

FREE_SHIPPING_FROM = Money.of("50.00")
SHIPPING_FEE = Money.of("4.90")


@dataclass(frozen=True)
class Line:
    """One product in a cart, with its quantity and net price."""

    product: Product
    quantity: int
    net: Money


@dataclass(frozen=True)
class Receipt:
    """What a customer paid for one order."""

    order_id: str
    region: str
    lines: tuple[Line, ...]
    net: Money
    tax: Money
    shipping: Money
    total: Money


class Cart:
    """A customer's cart, priced for their region and customer tier."""

    def __init__(self, catalog: Catalog, region: str = "DE", tier: str = "retail") -> None:
        tax.rate_for(region)  # reject unknown regions now rather than at checkout
        pricing.tier_discount(tier)
        self.catalog = catalog
        self.region = region
        self.tier = tier
        self.coupon: str | None = None
        self._quantities: dict[str, int] = {}

    def add(self, sku: str, quantity: int = 1) -> None:
        if quantity < 1:
            raise ValueError(f"quantity must be at least 1, got {quantity}")
        self.catalog.get(sku)
        self._quantities[sku] = self._quantities.get(sku, 0) + quantity

    def set_quantity(self, sku: str, quantity: int) -> None:
        """Change a line's quantity; zero removes the line."""
        if quantity < 0:
            raise ValueError(f"quantity cannot be negative, got {quantity}")
        if quantity == 0:
            self._quantities.pop(sku, None)
        else:
            self.catalog.get(sku)
            self._quantities[sku] = quantity

    def quantity(self, sku: str) -> int:
        return self._quantities.get(sku, 0)

    def apply_coupon(self, code: str) -> None:
        pricing.coupon_rate(code)  # unknown codes raise ValueError
        self.coupon = code

    @property
    def lines(self) -> tuple[Line, ...]:
        """Cart lines by SKU, each priced after quantity, tier and coupon discounts."""
        lines = []
        for sku, quantity in sorted(self._quantities.items()):
            product = self.catalog.get(sku)
            price = pricing.line_price(product, quantity, self.tier)
            lines.append(Line(product, quantity, pricing.apply_coupon(price, self.coupon)))
        return tuple(lines)

    def net_total(self) -> Money:
        return total(line.net for line in self.lines)

    def tax_total(self) -> Money:
        return total(
            tax.tax_on(line.net, self.region, line.product.category) for line in self.lines
        )

    def shipping(self) -> Money:
        """Flat fee, waived for empty carts and net totals from FREE_SHIPPING_FROM up."""
        net = self.net_total()
        free = net > FREE_SHIPPING_FROM if _faults.bug("cart") else net >= FREE_SHIPPING_FROM
        return Money.zero() if not self._quantities or free else SHIPPING_FEE

    def total(self) -> Money:
        return self.net_total() + self.tax_total() + self.shipping()

    def checkout(self, ledger: StockLedger, order_id: str) -> Receipt:
        """Reserve the cart's stock and return the receipt; the cart is emptied."""
        if not self._quantities:
            raise ValueError("cannot check out an empty cart")
        ledger.reserve(order_id, dict(self._quantities))
        receipt = Receipt(
            order_id=order_id,
            region=self.region,
            lines=self.lines,
            net=self.net_total(),
            tax=self.tax_total(),
            shipping=self.shipping(),
            total=self.total(),
        )
        self._quantities.clear()
        return receipt
