"""Every test here runs real processes (pytest runs with xdist workers, farm daemons).

They are all marked ``slow``: ``pytest -m "not slow"`` is the fast tier a developer runs
for feedback in seconds; CI runs both.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.slow)
