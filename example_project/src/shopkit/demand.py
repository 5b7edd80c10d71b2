"""Demand statistics for daily unit sales: summaries, intervals and forecasts.

This is the module that needs SciPy. `scipy.stats` is imported at module
level, so importing this module (or one that imports it) takes a while.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from shopkit import _faults

INTERMITTENT_ADI = 1.32  # average demand interval above which demand is "intermittent"


@dataclass(frozen=True)
class DemandSummary:
    """Descriptive statistics of a daily sales history."""

    days: int
    total: int
    mean: float
    std: float
    p95: float
    zero_days: int

    @property
    def cv(self) -> float:
        """Coefficient of variation (std / mean); infinite when nothing sold."""
        return self.std / self.mean if self.mean else float("inf")


def _as_array(daily: Sequence[float] | np.ndarray) -> np.ndarray:
    values = np.asarray(daily, dtype=float)
    if values.ndim != 1 or values.size == 0:
        raise ValueError("daily sales must be a non-empty 1-D sequence")
    if (values < 0).any():
        raise ValueError("daily sales cannot be negative")
    return values


def summarize(daily: Sequence[float] | np.ndarray) -> DemandSummary:
    """Days, total, mean, sample standard deviation, 95th percentile, zero days."""
    values = _as_array(daily)
    ddof = 0 if _faults.bug("demand") else 1
    return DemandSummary(
        days=values.size,
        total=int(values.sum()),
        mean=float(values.mean()),
        std=float(values.std(ddof=ddof)) if values.size > 1 else 0.0,
        p95=float(np.percentile(values, 95)),
        zero_days=int((values == 0).sum()),
    )


def mean_interval(
    daily: Sequence[float] | np.ndarray, confidence: float = 0.95
) -> tuple[float, float]:
    """Student-t confidence interval for the mean daily demand."""
    values = _as_array(daily)
    if values.size < 2:
        raise ValueError("an interval needs at least two days")
    sem = float(stats.sem(values))
    mean = float(values.mean())
    if sem == 0:
        return mean, mean
    low, high = stats.t.interval(confidence, df=values.size - 1, loc=mean, scale=sem)
    return float(low), float(high)


def bootstrap_mean_interval(
    daily: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval for the mean daily demand."""
    values = _as_array(daily)
    rng = np.random.default_rng(seed)
    means = rng.choice(values, size=(resamples, values.size)).mean(axis=1)
    tail = (1 - confidence) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def service_factor(service_level: float) -> float:
    """Standard-normal quantile for a cycle service level (0.95 -> 1.645)."""
    if not 0 < service_level < 1:
        raise ValueError(f"service level must be between 0 and 1, got {service_level}")
    return float(stats.norm.ppf(service_level))


def poisson_stock_for(mean_demand: float, service_level: float) -> int:
    """Smallest stock covering Poisson demand with probability `service_level`."""
    service_factor(service_level)  # validates the level
    return int(stats.poisson.ppf(service_level, mean_demand))


def is_intermittent(daily: Sequence[float] | np.ndarray) -> bool:
    """Whether sales days are rare (average demand interval above 1.32 days)."""
    values = _as_array(daily)
    selling_days = np.count_nonzero(values)
    return selling_days == 0 or values.size / selling_days > INTERMITTENT_ADI


def weekly_profile(daily: Sequence[float] | np.ndarray) -> np.ndarray:
    """Seven weekday indices (mean 1.0) from whole weeks, first day = index 0."""
    values = _as_array(daily)
    weeks = values.size // 7
    if weeks == 0 or values[: weeks * 7].sum() == 0:
        raise ValueError("a weekly profile needs at least one week with sales")
    by_weekday = values[: weeks * 7].reshape(weeks, 7).mean(axis=0)
    return by_weekday / by_weekday.mean()


def robust_outliers(daily: Sequence[float] | np.ndarray, threshold: float = 3.5) -> list[int]:
    """Indices of days whose modified z-score (median / MAD based) exceeds `threshold`."""
    values = _as_array(daily)
    median = np.median(values)
    mad = np.median(np.abs(values - median))
    if mad == 0:
        return []
    scores = 0.6745 * (values - median) / mad
    return [int(i) for i in np.flatnonzero(np.abs(scores) > threshold)]


def moving_average_forecast(
    daily: Sequence[float] | np.ndarray, window: int = 7, horizon: int = 7
) -> np.ndarray:
    """Flat forecast: the mean of the last `window` days, for `horizon` days."""
    values = _as_array(daily)
    if not 1 <= window <= values.size:
        raise ValueError(f"window must be between 1 and {values.size}, got {window}")
    return np.full(horizon, values[-window:].mean())


def exponential_smoothing(daily: Sequence[float] | np.ndarray, alpha: float = 0.3) -> float:
    """Level after simple exponential smoothing of the history."""
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    values = _as_array(daily)
    level = values[0]
    for value in values[1:]:
        level = alpha * value + (1 - alpha) * level
    return float(level)


def forecast_interval(
    daily: Sequence[float] | np.ndarray, horizon: int, confidence: float = 0.9
) -> tuple[float, float, float]:
    """Total demand over the next `horizon` days: (point, low, high).

    The point forecast is the smoothed level times the horizon; the interval
    assumes independent days with the history's standard deviation.
    """
    point = exponential_smoothing(daily) * horizon
    spread = summarize(daily).std * np.sqrt(horizon) * service_factor(0.5 + confidence / 2)
    return point, max(0.0, point - spread), point + spread


def backtest_mae(daily: Sequence[float] | np.ndarray, window: int = 7, horizon: int = 7) -> float:
    """Mean absolute error of rolling moving-average forecasts over the history."""
    values = _as_array(daily)
    errors = [
        abs(
            moving_average_forecast(values[:end], window, horizon) - values[end : end + horizon]
        ).mean()
        for end in range(window, values.size - horizon + 1, horizon)
    ]
    if not errors:
        raise ValueError("history too short for a backtest")
    return float(np.mean(errors))


def simulate_sales(
    days: int,
    mean: float,
    dispersion: float = 2.0,
    profile: Sequence[float] | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Synthetic daily sales: negative binomial around `mean`, with a weekly profile."""
    rng = np.random.default_rng(seed)
    weekly = np.ones(7) if profile is None else np.asarray(profile, dtype=float)
    means = mean * np.resize(weekly, days)
    return rng.negative_binomial(dispersion, dispersion / (dispersion + means))
