"""Fixtures of the forecast tests."""

from __future__ import annotations

import pytest

from farm_server.forecast.trace import Run
from tests.farm_server.forecast.forecast_data import seasonal_runs


@pytest.fixture
def runs() -> list[Run]:
    return seasonal_runs(6)
