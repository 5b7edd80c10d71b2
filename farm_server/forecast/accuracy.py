"""Forecast accuracy by the traces' convention: rolling origin, MASE against the weekly naive.

Holdout: the ``days`` whole UTC days before the day of the last arrival (that last,
partial day is not scored); one origin at each of those days' 00:00, forecasting 24 h
from data strictly before it. MASE = mean absolute error over the holdout hours / mean
``|y[t] - y[t-168]|`` over every hour before the first origin.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from farm_server.forecast.demand import WEEK, HourlySeries
from farm_server.forecast.models import Forecaster, SeasonalNaive

__all__ = ["Accuracy", "holdout_origins", "score"]

DAY_S = 86400.0


@dataclass(frozen=True)
class Accuracy:
    model: str
    mase: float
    seasonal_naive_mase: float
    holdout_days: int
    #: hourly forecasts over the holdout (median), for plots
    forecast: np.ndarray
    actual: np.ndarray
    first_origin: float


def holdout_origins(series: HourlySeries, last_arrival: float, days: int) -> list[float]:
    last_day = (last_arrival // DAY_S) * DAY_S
    return [last_day - (days - d) * DAY_S for d in range(days)]


def score(
    series: HourlySeries,
    last_arrival: float,
    forecaster: Forecaster,
    days: int = 14,
    progress: Callable[[int], None] = lambda d: None,
) -> Accuracy:
    """MASE of ``forecaster`` and of the weekly seasonal naive on the holdout of ``series``."""
    origins = holdout_origins(series, last_arrival, days)
    first = series.index(origins[0])
    y = series.values
    if first <= WEEK:
        msg = f"need more than a week of history before the {days}-day holdout, have {first} h"
        raise ValueError(msg)
    scale = float(np.mean(np.abs(y[WEEK:first] - y[: first - WEEK])))
    naive = SeasonalNaive()
    errors, naive_errors, points, actual = [], [], [], []
    model = forecaster.name
    for d, origin in enumerate(origins):
        past = series.before(origin)
        i = series.index(origin)
        truth = y[i : i + 24]
        fc = forecaster.forecast(past, 24)
        model = getattr(forecaster, "chosen", "") or fc.model
        errors.append(np.abs(fc.median - truth))
        naive_errors.append(np.abs(naive.forecast(past, 24).median - truth))
        points.append(fc.median)
        actual.append(truth)
        progress(d)
    mae = float(np.mean(np.concatenate(errors)))
    naive_mae = float(np.mean(np.concatenate(naive_errors)))
    if scale == 0:
        mase = 0.0 if mae == 0 else float("inf")
        naive_mase = 0.0 if naive_mae == 0 else float("inf")
    else:
        mase, naive_mase = mae / scale, naive_mae / scale
    return Accuracy(
        model, mase, naive_mase, days, np.concatenate(points), np.concatenate(actual), origins[0]
    )
