"""Fixtures of the forecast tests."""

from __future__ import annotations

import pytest
from forecast_data import seasonal_runs

from farm_server.forecast.trace import Run


@pytest.fixture
def runs() -> list[Run]:
    return seasonal_runs(6)
