"""Synthetic demand for the forecast tests: seasonal, known, small (imported by name:
the test directories are on sys.path, as pytest's default import mode puts them)."""

from __future__ import annotations

import numpy as np

from farm_server.forecast.demand import HOUR, HourlySeries
from farm_server.forecast.trace import Run

#: a Monday 00:00 UTC (2026-03-02)
MONDAY = 1772409600.0


def weekday_pattern(weeks: int) -> HourlySeries:
    """4 workers an hour 09:00-17:00 on weekdays, nothing otherwise."""
    hours = np.arange(weeks * 168)
    day, hod = hours // 24 % 7, hours % 24
    values = np.where((day < 5) & (hod >= 9) & (hod < 17), 4.0, 0.0)
    return HourlySeries(MONDAY, values)


def seasonal_runs(weeks: int, rate: float = 3.0, night: float = 0.1, seed: int = 1) -> list[Run]:
    """Pushes at ``rate`` an hour in weekday working hours (2 workers a run, 1-3 runs a
    push, seconds apart), ``night`` times that otherwise."""
    rng = np.random.default_rng(seed)
    runs: list[Run] = []
    for h in range(weeks * 168):
        day, hod = h // 24 % 7, h % 24
        lam = rate if day < 5 and 9 <= hod < 17 else rate * night
        for _ in range(rng.poisson(lam)):
            t = MONDAY + h * HOUR + float(rng.integers(0, 3600))
            for k in range(int(rng.integers(1, 4))):
                runs.append(Run(t + 5 * k, 2, 300.0))
    runs.sort(key=lambda r: r.time)
    return runs
