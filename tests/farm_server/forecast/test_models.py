"""Forecasters: known answers on seasonal series, fallbacks, MASE by the traces' rule."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest

from farm_server.forecast import models
from farm_server.forecast.accuracy import score
from farm_server.forecast.demand import HOUR, HourlySeries, hourly_demand
from farm_server.forecast.models import (
    Auto,
    ForecastWarning,
    HourOfWeek,
    QuantileRegression,
    SeasonalNaive,
    default_forecaster,
)
from tests.farm_server.forecast.forecast_data import MONDAY, weekday_pattern


class TestKnownAnswer:
    @pytest.mark.parametrize("model", [HourOfWeek(), SeasonalNaive(), QuantileRegression()])
    def test_a_weekly_pattern_is_forecast_exactly(self, model):
        """A series that repeats every week is forecast (median) to within a tenth."""
        series = weekday_pattern(8)
        truth = weekday_pattern(10).values[len(series) : len(series) + 48]
        fc = model.forecast(series, 48)
        assert np.abs(fc.median - truth).max() < 0.1
        assert fc.start == series.start + len(series) * HOUR

    def test_quantiles_never_cross(self):
        """Each upper quantile is at least the one below it."""
        rng = np.random.default_rng(0)
        series = HourlySeries(MONDAY, weekday_pattern(8).values + rng.poisson(1.0, 8 * 168))
        fc = QuantileRegression().forecast(series, 24)
        for lo, hi in zip(models.QUANTILES, models.QUANTILES[1:], strict=False):
            assert (fc.quantiles[hi] >= fc.quantiles[lo] - 1e-9).all()

    def test_auto_picks_by_backtest(self):
        """On a pure weekly pattern the backtest's choice has no error at all."""
        auto = default_forecaster(have_statsmodels=True)
        series = weekday_pattern(8)
        fc = auto.forecast(series, 24)
        truth = weekday_pattern(9).values[len(series) : len(series) + 24]
        assert np.abs(fc.median - truth).max() < 0.1
        assert isinstance(auto, Auto)
        assert auto.chosen in ("quantreg", "hour-of-week", "seasonal-naive")


class TestFallbacks:
    def test_short_history_uses_the_hour_of_day(self):
        """Three days of history: the same hour of the previous days, no statsmodels fit."""
        values = np.tile(np.r_[np.zeros(12), np.full(12, 2.0)], 3)
        auto = default_forecaster(have_statsmodels=True)
        fc = auto.forecast(HourlySeries(MONDAY, values), 24)
        assert auto.chosen == "hour-of-day"
        assert fc.median.tolist() == values[:24].tolist()

    def test_an_empty_history_forecasts_nothing(self):
        """No claims yet: zero demand, not an error."""
        fc = default_forecaster(have_statsmodels=True).forecast(
            HourlySeries(MONDAY, np.zeros(0)), 24
        )
        assert fc.median.tolist() == [0.0] * 24

    @pytest.mark.parametrize("model", [HourOfWeek(), SeasonalNaive(), QuantileRegression()])
    def test_an_all_zero_series_forecasts_zero(self, model):
        """Every quantile of an all-zero history is zero (no fit failure, no nan)."""
        fc = model.forecast(HourlySeries(MONDAY, np.zeros(8 * 168)), 48)
        for values in fc.quantiles.values():
            assert values.tolist() == [0.0] * 48

    def test_without_statsmodels_the_fallbacks_serve_with_one_warning(self, monkeypatch):
        """A failing statsmodels import gives the fallback models and one warning."""
        monkeypatch.setitem(sys.modules, "statsmodels", None)
        monkeypatch.setitem(sys.modules, "statsmodels.api", None)
        monkeypatch.setattr(models, "_warned", False)
        assert not models.statsmodels_available()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            first = default_forecaster()
            second = default_forecaster()
        assert [type(w.message) for w in caught] == [ForecastWarning]
        assert "statsmodels is not installed" in str(caught[0].message)
        for auto in (first, second):
            assert isinstance(auto, Auto)
            assert [c.name for c in auto.candidates] == ["hour-of-week", "seasonal-naive"]
        fc = first.forecast(weekday_pattern(4), 24)
        assert len(fc) == 24


class TestScore:
    def test_mase_of_the_seasonal_naive_is_reported_beside_the_model(self, runs):
        """A median model beats the weekly naive on a noisy seasonal trace."""
        series = hourly_demand([(r.time, r.workers) for r in runs])
        acc = score(series, runs[-1].time, HourOfWeek(), days=7)
        assert acc.holdout_days == 7
        assert len(acc.forecast) == 7 * 24
        assert 0 < acc.mase < acc.seasonal_naive_mase

    def test_too_short_a_trace_is_refused(self):
        """A holdout needs more than a week of history before it."""
        series = weekday_pattern(2)
        with pytest.raises(ValueError, match="more than a week of history"):
            score(series, series.start + len(series) * HOUR - 1, HourOfWeek(), days=14)
