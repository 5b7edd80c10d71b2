"""Supplier API client, against a fake server with network latency.

These tests are I/O-bound: every request sleeps like a real round trip.
"""

import json
import time
from decimal import Decimal

import pytest
from _cost import burn
from shopkit.money import Money
from shopkit.supplier import SupplierClient, SupplierError

LATENCY = 0.03  # seconds per request


class FakeSupplierAPI:
    """An in-memory supplier API; `script` queues failures to answer first."""

    def __init__(self, quotes, latency=LATENCY):
        self.quotes = quotes
        self.latency = latency
        self.script = []
        self.requests = []

    def get(self, path):
        time.sleep(self.latency)
        self.requests.append(path)
        if self.script:
            outcome = self.script.pop(0)
            if outcome == "timeout":
                raise TimeoutError(path)
            return outcome, "busy"
        sku = path.rsplit("/", 1)[-1]
        if sku not in self.quotes:
            return 404, "not found"
        return 200, json.dumps(self.quotes[sku])


@pytest.fixture(scope="module")
def price_sheet():
    """The supplier's price sheet, fetched once per module (a slow download)."""
    time.sleep(0.2)
    return {
        f"S-{n}": {
            "sku": f"S-{n}",
            "unit_cost_cents": 250 + 75 * n,
            "lead_time_days": 2 + n % 5,
            "available": 10 * n,
        }
        for n in range(1, 21)
    }


@pytest.fixture
def api(price_sheet):
    return FakeSupplierAPI(price_sheet)


@pytest.fixture
def client(api):
    return SupplierClient(api)


def test_quote_is_parsed(client):
    quote = client.quote("S-2")
    assert quote.unit_cost == Money.of("4.00")
    assert (quote.sku, quote.lead_time_days, quote.available) == ("S-2", 4, 20)
    burn(5)


@pytest.mark.parametrize("n", [1, 7, 13, 19])
def test_cents_become_money(client, n):
    assert client.quote(f"S-{n}").unit_cost.amount == Decimal(250 + 75 * n) / 100
    burn(5)


def test_currency_defaults_to_euro_but_can_be_given():
    api = FakeSupplierAPI(
        {
            "X": {
                "sku": "X",
                "unit_cost_cents": 999,
                "currency": "USD",
                "lead_time_days": 1,
                "available": 1,
            }
        }
    )
    assert SupplierClient(api).quote("X").unit_cost == Money.of("9.99", "USD")
    burn(5)


def test_busy_server_is_retried(api, client):
    api.script = [503, 429]
    assert client.quote("S-1").sku == "S-1"
    assert len(api.requests) == 3
    burn(5)


def test_timeouts_are_retried(api, client):
    api.script = ["timeout"]
    assert client.quote("S-3").available == 30
    assert len(api.requests) == 2
    burn(5)


def test_client_gives_up_after_its_retries(api, client):
    api.script = [503, 503, 503, 503]
    with pytest.raises(SupplierError, match="HTTP 503"):
        client.quote("S-1")
    assert len(api.requests) == 3
    burn(5)


def test_repeated_timeouts_are_reported(api):
    api.script = ["timeout"] * 5
    with pytest.raises(SupplierError, match="timed out"):
        SupplierClient(api, retries=1).quote("S-1")
    assert len(api.requests) == 2
    burn(5)


def test_missing_sku_is_not_retried(api, client):
    with pytest.raises(SupplierError, match="HTTP 404"):
        client.quote("S-99")
    assert api.requests == ["/quotes/S-99"]
    burn(5)


def test_quotes_for_several_skus(api, client):
    quotes = client.quotes(["S-1", "S-2", "S-3", "S-4"])
    assert list(quotes) == ["S-1", "S-2", "S-3", "S-4"]
    assert len(api.requests) == 4
    burn(5)


def test_cheapest_able_to_deliver(client):
    best = client.cheapest(["S-1", "S-5", "S-9"], quantity=40)
    assert best.sku == "S-5"
    burn(5)


def test_cheapest_when_nobody_can_deliver(client):
    with pytest.raises(SupplierError, match="500 units"):
        client.cheapest(["S-1", "S-2"], quantity=500)
    burn(5)


def test_price_sheet_refresh(client, price_sheet):
    """Refresh every quote on the sheet: twenty round trips."""
    quotes = client.quotes(price_sheet)
    assert len(quotes) == 20
    assert max(q.unit_cost for q in quotes.values()) == Money.of("17.50")
    burn(10)


@pytest.mark.parametrize("retries", [0, 1, 2, 3])
def test_retry_budget_is_respected(api, retries):
    api.script = [502] * 10
    with pytest.raises(SupplierError):
        SupplierClient(api, retries=retries).quote("S-1")
    assert len(api.requests) == retries + 1
    burn(5)
