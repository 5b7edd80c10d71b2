"""Catalogue lookups, categories and search."""

import pytest
from _cost import burn
from shopkit import _faults
from shopkit.catalog import NOUNS, Catalog, Product, demo_catalog
from shopkit.money import Money

# Where the planted `leak` fault keeps its memory: a module-level list, like
# a cache that never evicts, so the memory outlives the test.
_warm_buffers: list[bytes] = []


def make(sku, name="Blue Mug", category="kitchen", price="9.99", tags=()):
    return Product(sku, name, category, Money.of(price), tags=frozenset(tags))


@pytest.fixture
def small():
    return Catalog(
        [
            make("K-1", "Blue Mug", tags=["gift"]),
            make("K-2", "Steel Pan", price="29.00"),
            make("B-1", "Travel Guide", "books", "14.50", tags=["gift", "new"]),
            make("T-1", "Wooden Train", "toys", "39.90"),
        ]
    )


def test_get_returns_the_product(small):
    assert small.get("K-2").name == "Steel Pan"
    burn(5)


def test_get_unknown_sku_names_it(small):
    with pytest.raises(KeyError, match="X-9"):
        small.get("X-9")
    burn(5)


def test_duplicate_sku_is_refused(small):
    with pytest.raises(ValueError, match="duplicate SKU 'K-1'"):
        small.add(make("K-1"))
    burn(6)


def test_len_and_membership(small):
    assert len(small) == 4
    assert "B-1" in small
    assert "B-2" not in small
    burn(5)


def test_categories_are_sorted_and_unique(small):
    assert small.categories() == ["books", "kitchen", "toys"]
    burn(6)


def test_in_category_lists_by_sku(small):
    assert [p.sku for p in small.in_category("kitchen")] == ["K-1", "K-2"]
    burn(6)


def test_price_range(small):
    assert small.price_range() == (Money.of("9.99"), Money.of("39.90"))
    assert small.price_range("kitchen") == (Money.of("9.99"), Money.of("29.00"))
    burn(8)


def test_price_range_of_empty_category_raises(small):
    with pytest.raises(ValueError, match="garden"):
        small.price_range("garden")
    burn(5)


def test_search_matches_name_words(small):
    assert [p.sku for p in small.search("pan")] == ["K-2"]
    burn(10)


def test_search_ignores_case(small):
    assert [p.sku for p in small.search("WOODEN train")] == ["T-1"]
    burn(10)


def test_search_matches_tags(small):
    assert [p.sku for p in small.search("gift")] == ["B-1", "K-1"]
    burn(10)


def test_search_needs_every_word(small):
    assert [p.sku for p in small.search("gift guide")] == ["B-1"]
    assert small.search("gift train") == []
    burn(12)


def test_blank_search_finds_nothing(small):
    assert small.search("   ") == []
    burn(5)


def test_index_is_rebuilt_after_add(small):
    assert small.search("kettle") == []
    small.add(make("K-3", "Copper Kettle"))
    assert [p.sku for p in small.search("kettle")] == ["K-3"]
    burn(12)


def test_demo_catalog_is_deterministic():
    first, second = demo_catalog(50, seed=3), demo_catalog(50, seed=3)
    assert [p.name for p in first] == [p.name for p in second]
    burn(30)


def test_demo_catalog_depends_on_seed():
    assert [p.price for p in demo_catalog(50, seed=1)] != [
        p.price for p in demo_catalog(50, seed=2)
    ]
    burn(25)


def test_demo_skus_are_unique(catalog):
    assert len({p.sku for p in catalog}) == len(catalog) == 240
    burn(15)


@pytest.mark.parametrize("category", sorted(NOUNS))
def test_demo_catalog_fills_every_category(catalog, category):
    products = catalog.in_category(category)
    assert len(products) == 40
    assert all(p.sku.startswith(category[:3].upper()) for p in products)
    assert all(Money.of("1.99") <= p.price <= Money.of("199.99") for p in products)
    burn(20)


def test_cache_warmup_large(catalog):
    """Warm the search index of the full catalogue, then query it many times."""
    assert catalog.warm_search_index() > 40
    hits = sum(len(catalog.search(word)) for word in ("red", "gift", "steel", "eco") * 50)
    assert hits > 0
    if _faults.ACTIVE.leak:
        for _ in range(4):  # grows RSS by ~200 MB in four steps
            _warm_buffers.append(b"\x5a" * 50_000_000)
            burn(40)
    burn(120)


@pytest.mark.parametrize("query", ["mug", "steel hammer", "eco", "olive oil", "deluxe coffee"])
def test_search_results_contain_every_word(catalog, query):
    results = catalog.search(query)
    assert results, f"nothing found for {query!r}"
    assert all(set(query.split()) <= p.words() for p in results)
    burn(15)
