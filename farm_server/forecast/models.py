"""Forecasters of hourly demand, behind one Protocol, chosen per profile by backtest.

MASE scores absolute error, so every point forecast here is a median, not a mean.
``QuantileRegression`` (statsmodels ``QuantReg``) fits the median and the upper
quantiles on daily and weekly Fourier terms plus levels known at the forecast origin;
``HourOfWeek`` (median of the same hour over the last weeks) and ``SeasonalNaive``
(last week again) need no statsmodels and serve short histories. ``Auto`` picks, by a
rolling-origin backtest on the series' own recent days, the candidate with the lowest
absolute error. Without statsmodels the farm keeps working on the fallbacks: one warning.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from farm_server.forecast.demand import HOUR, WEEK, HourlySeries

__all__ = [
    "QUANTILES",
    "Auto",
    "Forecast",
    "ForecastWarning",
    "Forecaster",
    "HourOfWeek",
    "QuantileRegression",
    "SeasonalNaive",
    "default_forecaster",
    "statsmodels_available",
]

log = logging.getLogger("shadowfarm.forecast")

#: the quantiles every forecast carries (0.5 is the point forecast)
QUANTILES = (0.5, 0.8, 0.9, 0.95)
DAY = 24


class ForecastWarning(UserWarning):
    """The forecast runs degraded (e.g. statsmodels missing: fallback models only)."""


@dataclass(frozen=True)
class Forecast:
    """``quantiles[q][i]``: the q-quantile of demand in the hour ``start + i * 3600``."""

    start: float
    model: str
    quantiles: dict[float, np.ndarray] = field(default_factory=dict)

    @property
    def median(self) -> np.ndarray:
        return self.quantiles[0.5]

    def __len__(self) -> int:
        return len(self.median)

    def at(self, when: float, q: float = 0.5) -> float:
        """The q-quantile for the hour holding ``when`` (0 outside the forecast)."""
        i = int((when - self.start) // HOUR)
        values = self.quantiles[q]
        return float(values[i]) if 0 <= i < len(values) else 0.0


class Forecaster(Protocol):
    """Forecasts ``horizon`` hours after the end of a history."""

    name: str
    #: hours of history it needs at the least
    min_history: int

    def forecast(self, history: HourlySeries, horizon: int) -> Forecast: ...


def _nanquantile(lags: np.ndarray, q: float, method: str = "linear") -> np.ndarray:
    """Per-column quantile ignoring unknown (nan) weeks; 0 where none is known."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-nan columns: short history
        return np.nan_to_num(np.nanquantile(lags, q, axis=0, method=method))  # type: ignore[call-overload]


def _end(history: HourlySeries) -> float:
    return history.start + len(history) * HOUR


def _same_hour_lags(y: np.ndarray, horizon: int, weeks: int) -> np.ndarray:
    """rows[w][i]: the value ``(w+1)`` weeks before forecast hour i (nan when unknown)."""
    n = len(y)
    rows = np.full((weeks, horizon), np.nan)
    for w in range(weeks):
        for i in range(horizon):
            j = n + i - (w + 1) * WEEK
            # hours past the end repeat the week before (horizons over a week)
            while j >= n:
                j -= WEEK
            if j >= 0:
                rows[w, i] = y[j]
    return rows


class SeasonalNaive:
    """Last week again (the MASE yardstick); quantiles from the same hour of 4 weeks."""

    name = "seasonal-naive"
    min_history = WEEK

    def forecast(self, history: HourlySeries, horizon: int) -> Forecast:
        lags = _same_hour_lags(history.values, horizon, 4)
        point = np.nan_to_num(lags[0])
        quantiles = {0.5: point}
        for q in QUANTILES[1:]:
            quantiles[q] = np.maximum(point, _nanquantile(lags, q))
        return Forecast(_end(history), self.name, quantiles)


@dataclass
class HourOfWeek:
    """Quantiles of the same hour of week over the last ``weeks`` weeks (median point)."""

    weeks: int = 8
    name: str = "hour-of-week"
    min_history: int = WEEK

    def forecast(self, history: HourlySeries, horizon: int) -> Forecast:
        lags = _same_hour_lags(history.values, horizon, self.weeks)
        quantiles = {q: _nanquantile(lags, q, "lower") for q in QUANTILES}
        return Forecast(_end(history), self.name, quantiles)


class HourOfDay:
    """Short histories (under a week): quantiles of the same hour of day, else zero."""

    name = "hour-of-day"
    min_history = 0

    def forecast(self, history: HourlySeries, horizon: int) -> Forecast:
        y = history.values
        n = len(y)
        out = {q: np.zeros(horizon) for q in QUANTILES}
        for i in range(horizon):
            same = y[[j for j in range(n + i - DAY, -1, -DAY) if j < n]]
            if len(same):
                for q in QUANTILES:
                    out[q][i] = np.quantile(same, q, method="lower")
        return Forecast(_end(history), self.name, out)


def statsmodels_available() -> bool:
    try:
        import statsmodels.api  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class QuantileRegression:
    """statsmodels ``QuantReg``: one linear quantile model per quantile on the last weeks.

    Features of an hour, all known at its day's 00:00 origin: daily and weekly Fourier
    terms, a weekend flag, the mean of the same hour over the 4 weeks before, and the
    mean demand of the week and of the day before the origin (the recent level).
    """

    train_weeks: int = 8
    #: the quantiles fitted (a backtest needs the median only)
    levels: tuple[float, ...] = QUANTILES
    name: str = "quantreg"
    min_history: int = 5 * WEEK

    def _features(self, y: np.ndarray, series: HourlySeries, rows: np.ndarray) -> np.ndarray:
        how = series.hour_of_week(rows).astype(float)
        hod = how % DAY
        cols = [np.ones(len(rows))]
        for k in (1, 2, 3):
            cols += [np.sin(2 * np.pi * k * hod / DAY), np.cos(2 * np.pi * k * hod / DAY)]
        for k in (1, 2):
            cols += [np.sin(2 * np.pi * k * how / WEEK), np.cos(2 * np.pi * k * how / WEEK)]
        cols.append((how >= 5 * DAY).astype(float))
        csum = np.concatenate([[0.0], np.cumsum(y)])
        # origin: the 00:00 UTC that starts each row's day (rows past the data: its end)
        hours_abs = (series.start // HOUR + rows).astype(np.int64)
        origin = np.minimum(rows - (hours_abs % DAY), len(y))
        same = np.zeros(len(rows))
        for w in range(1, 5):
            same += y[np.clip(rows - w * WEEK, 0, len(y) - 1)]
        cols.append(same / 4)
        lo_w = np.maximum(origin - WEEK, 0)
        cols.append((csum[origin] - csum[lo_w]) / np.maximum(origin - lo_w, 1))
        lo_d = np.maximum(origin - DAY, 0)
        cols.append((csum[origin] - csum[lo_d]) / np.maximum(origin - lo_d, 1))
        return np.column_stack(cols)

    def forecast(self, history: HourlySeries, horizon: int) -> Forecast:
        from statsmodels.regression.quantile_regression import QuantReg

        y = history.values
        n = len(y)
        first = max(4 * WEEK, n - self.train_weeks * WEEK)
        train = np.arange(first, n)
        future = np.arange(n, n + horizon)
        x_train = self._features(y, history, train)
        # the future's lags may reach past the data: fill with the last week's values
        padded = np.concatenate([y, _same_hour_lags(y, horizon, 1)[0]])
        x_future = self._features(padded, history, future)
        x_future[:, -2:] = self._features(y, history, future)[:, -2:]
        quantiles: dict[float, np.ndarray] = {}
        if not y[train].any():
            zero = np.zeros(horizon)
            return Forecast(_end(history), self.name, dict.fromkeys(QUANTILES, zero))
        with warnings.catch_warnings():
            # a sparse series makes some fits degenerate (IterationLimit, singular): the
            # estimate is still usable, and a bad one loses the backtest anyway
            warnings.simplefilter("ignore")
            for q in self.levels:
                fit = QuantReg(y[train], x_train).fit(q=q, max_iter=2000)
                quantiles[q] = np.clip(x_future @ fit.params, 0, None)
        for lo, hi in zip(self.levels, self.levels[1:], strict=False):
            quantiles[hi] = np.maximum(quantiles[hi], quantiles[lo])  # no crossing
        return Forecast(_end(history), self.name, quantiles)


@dataclass
class Auto:
    """Picks among ``candidates`` by rolling-origin backtest over the last ``days`` days."""

    candidates: list[Forecaster]
    days: int = 7
    name: str = "auto"
    min_history: int = 0
    #: a choice stands this many days before the next backtest (backtests cost fits)
    reselect_days: int = 7
    #: the last choice made (for status displays)
    chosen: str = ""
    _best: Forecaster | None = None
    _chosen_at: int = -(10**9)

    def forecast(self, history: HourlySeries, horizon: int) -> Forecast:
        usable = [c for c in self.candidates if len(history) >= c.min_history + self.days * DAY]
        if not usable:
            fits = [c for c in self.candidates if len(history) >= c.min_history]
            model = fits[0] if fits else HourOfDay()
            self.chosen = model.name
            return model.forecast(history, horizon)
        now_h = int(history.start // HOUR) + len(history)
        if self._best in usable and now_h - self._chosen_at < self.reselect_days * DAY:
            best = self._best
        elif len(usable) == 1:
            best = usable[0]
        else:
            y = history.values
            n = len(y)
            # origins at day starts (00:00 UTC) within the last `days` days
            last_origin = n - int((history.start // HOUR + n) % DAY)
            errors = []
            for model in usable:
                err = 0.0
                for d in range(1, self.days + 1):
                    o = last_origin - d * DAY
                    past = HourlySeries(history.start, y[:o])
                    fc = _point_only(model).forecast(past, DAY)
                    err += float(np.abs(fc.median - y[o : o + DAY]).sum())
                errors.append(err)
            best = usable[int(np.argmin(errors))]
            self._best, self._chosen_at = best, now_h
        self.chosen = best.name
        return best.forecast(history, horizon)


def _point_only(model: Forecaster) -> Forecaster:
    if isinstance(model, QuantileRegression):
        return QuantileRegression(model.train_weeks, (0.5,))
    return model


_warned = False


def default_forecaster(*, have_statsmodels: bool | None = None) -> Forecaster:
    """The statsmodels model and the fallbacks, chosen by backtest; fallbacks alone
    (one ForecastWarning per process) when statsmodels cannot be imported."""
    global _warned
    if have_statsmodels is None:
        have_statsmodels = statsmodels_available()
    candidates: list[Forecaster] = [HourOfWeek(), SeasonalNaive()]
    if have_statsmodels:
        candidates.insert(0, QuantileRegression())
    elif not _warned:
        _warned = True
        msg = (
            "statsmodels is not installed: the demand forecast uses the hour-of-week "
            "fallback only; install the farm extra, pip install 'pytest-shadowfarm[farm]'"
        )
        log.warning(msg)
        warnings.warn(msg, ForecastWarning, stacklevel=2)
    return Auto(candidates)
