"""Product catalogue: products, categories and a word search index."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal

from shopkit import _faults
from shopkit.money import Money

NOUNS = {
    "books": ("Cookbook", "Atlas", "Novel", "Guide", "Diary"),
    "food": ("Coffee", "Tea", "Honey", "Chocolate", "Olive Oil"),
    "garden": ("Hose", "Rake", "Planter", "Shears", "Lantern"),
    "kitchen": ("Mug", "Pan", "Knife", "Kettle", "Grater"),
    "tools": ("Hammer", "Drill", "Wrench", "Saw", "Level"),
    "toys": ("Puzzle", "Kite", "Robot", "Train", "Blocks"),
}
ADJECTIVES = ("Red", "Large", "Compact", "Organic", "Classic", "Deluxe", "Mini", "Steel", "Wooden")
TAGS = ("bestseller", "new", "eco", "gift", "sale", "imported")


@dataclass(frozen=True)
class Product:
    """A product as sold in the shop, at its list price."""

    sku: str
    name: str
    category: str
    price: Money
    weight_kg: float = 0.0
    tags: frozenset[str] = frozenset()

    def words(self) -> set[str]:
        """Lower-case words a customer may search this product by."""
        return {word.lower() for word in self.name.split()} | {tag.lower() for tag in self.tags}


class Catalog:
    """Products by SKU, with category listings and word search."""

    def __init__(self, products: Iterable[Product] = ()) -> None:
        self._products: dict[str, Product] = {}
        self._index: dict[str, set[str]] | None = None
        for product in products:
            self.add(product)

    def add(self, product: Product) -> None:
        if product.sku in self._products:
            raise ValueError(f"duplicate SKU {product.sku!r}")
        self._products[product.sku] = product
        self._index = None

    def get(self, sku: str) -> Product:
        try:
            return self._products[sku]
        except KeyError:
            raise KeyError(f"unknown SKU {sku!r}") from None

    def __len__(self) -> int:
        return len(self._products)

    def __iter__(self) -> Iterator[Product]:
        return iter(self._products.values())

    def __contains__(self, sku: object) -> bool:
        return sku in self._products

    def categories(self) -> list[str]:
        return sorted({product.category for product in self})

    def in_category(self, category: str) -> list[Product]:
        return sorted((p for p in self if p.category == category), key=lambda p: p.sku)

    def price_range(self, category: str | None = None) -> tuple[Money, Money]:
        """Cheapest and dearest list price, overall or in one category."""
        prices = [p.price for p in self if category is None or p.category == category]
        if not prices:
            raise ValueError(f"no products in category {category!r}")
        return min(prices), max(prices)

    def _search_index(self) -> dict[str, set[str]]:
        """Word -> SKUs, built on first use and dropped whenever a product is added."""
        if self._index is None:
            self._index = {}
            for product in self:
                for word in product.words():
                    self._index.setdefault(word, set()).add(product.sku)
        return self._index

    def warm_search_index(self) -> int:
        """Build the search index now rather than on first search; return its word count."""
        return len(self._search_index())

    def search(self, query: str) -> list[Product]:
        """Products matching every word of `query`, case-insensitively, by SKU."""
        words = query.split() if _faults.bug("catalog") else query.lower().split()
        if not words:
            return []
        index = self._search_index()
        skus = set.intersection(*(index.get(word, set()) for word in words))
        return [self._products[sku] for sku in sorted(skus)]


def demo_catalog(size: int = 240, seed: int = 7) -> Catalog:
    """A deterministic catalogue of `size` products spread over all categories."""
    rng = random.Random(seed)
    categories = sorted(NOUNS)
    products = []
    for i in range(size):
        category = categories[i % len(categories)]
        products.append(
            Product(
                sku=f"{category[:3].upper()}-{i:04d}",
                name=f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS[category])}",
                category=category,
                price=Money(Decimal(rng.randint(199, 19999)) / 100),
                weight_kg=round(rng.uniform(0.1, 12.0), 2),
                tags=frozenset(rng.sample(TAGS, 2)),
            )
        )
    return Catalog(products)
