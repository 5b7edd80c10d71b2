"""Hourly demand: the sum of the workers of the runs arriving in each UTC hour.

The series starts at the first arrival's hour (or a given hour) and is dense: a quiet
hour is a 0, never missing, so seasonal lags are plain index offsets.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

__all__ = ["HOUR", "WEEK", "HourlySeries", "hourly_demand"]

HOUR = 3600.0
#: hours in a week: the seasonal period every model and the MASE scale use
WEEK = 168


@dataclass(frozen=True)
class HourlySeries:
    """``values[i]`` = workers asked for in the hour starting at ``start + i * 3600`` (UTC)."""

    start: float
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.values)

    def index(self, when: float) -> int:
        """The index of the hour holding ``when`` (may be out of range)."""
        return int((when - self.start) // HOUR)

    def hour_of_week(self, i: int | np.ndarray) -> np.ndarray:
        """0..167, 0 = Monday 00:00 UTC (the epoch began on a Thursday: 72 h in)."""
        hours = np.asarray(self.start // HOUR + np.asarray(i), dtype=np.int64)
        return (hours + 72) % WEEK

    def before(self, when: float) -> HourlySeries:
        """The hours that ended at or before ``when`` (data strictly before it)."""
        return HourlySeries(self.start, self.values[: max(0, self.index(when))])


def floor_hour(when: float) -> float:
    return (when // HOUR) * HOUR


def hourly_demand(
    arrivals: Iterable[tuple[float, int]], start: float | None = None, end: float | None = None
) -> HourlySeries:
    """Hourly series of ``(time, workers)`` arrivals from ``start``'s hour to ``end``'s.

    Defaults: the first and the last arrival. Arrivals outside the span are ignored.
    """
    pairs = sorted(arrivals)
    if start is None:
        start = pairs[0][0] if pairs else 0.0
    if end is None:
        end = pairs[-1][0] if pairs else start
    first = floor_hour(start)
    count = max(0, int((floor_hour(end) - first) // HOUR) + 1)
    values = np.zeros(count)
    for when, workers in pairs:
        i = int((when - first) // HOUR)
        if 0 <= i < count:
            values[i] += workers
    return HourlySeries(first, values)
