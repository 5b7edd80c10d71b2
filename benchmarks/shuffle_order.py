"""A tiny pytest plugin for the benchmarks: run the tests in a seeded random order.

Loaded with ``-p shuffle_order`` (this directory on PYTHONPATH); the seed comes from
``SHUFFLE_SEED`` (default 0), so a benchmark repetition is reproducible.
"""

from __future__ import annotations

import os
import random

import pytest


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    random.Random(int(os.environ.get("SHUFFLE_SEED", "0"))).shuffle(items)
