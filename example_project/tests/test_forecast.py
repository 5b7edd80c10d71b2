"""Demand forecasts: moving averages, smoothing, intervals and backtests."""

import numpy as np
import pytest
from _cost import burn
from shopkit import demand


@pytest.fixture(scope="module")
def seasonal_history():
    """A year of sales for 12 SKUs with a weekend peak (stands for a ~0.3 s query)."""
    burn(300)
    profile = (0.7, 0.8, 0.9, 1.0, 1.1, 1.6, 0.9)
    return [demand.simulate_sales(364, mean=m, profile=profile, seed=100 + m) for m in range(3, 15)]


def test_moving_average_uses_the_last_window():
    forecast = demand.moving_average_forecast([1, 1, 1, 4, 6, 8], window=3, horizon=2)
    assert forecast.tolist() == [6.0, 6.0]
    burn(6)


@pytest.mark.parametrize("window", [0, 7])
def test_moving_average_window_must_fit(window):
    with pytest.raises(ValueError, match="window"):
        demand.moving_average_forecast([1, 2, 3, 4, 5, 6], window=window)
    burn(5)


@pytest.mark.parametrize("horizon", [1, 7, 14, 28])
def test_forecast_covers_the_horizon(seasonal_history, horizon):
    assert demand.moving_average_forecast(seasonal_history[0], horizon=horizon).shape == (horizon,)
    burn(8)


def test_smoothing_of_constant_sales_is_that_constant():
    assert demand.exponential_smoothing([5.0] * 30) == pytest.approx(5.0)
    burn(5)


def test_smoothing_with_alpha_one_is_the_last_value():
    assert demand.exponential_smoothing([1, 9, 3, 7], alpha=1.0) == 7.0
    burn(5)


@pytest.mark.parametrize("alpha", [0, -0.5, 1.5])
def test_smoothing_alpha_is_checked(alpha):
    with pytest.raises(ValueError, match="alpha"):
        demand.exponential_smoothing([1, 2], alpha=alpha)
    burn(5)


def test_smoothing_follows_a_level_shift():
    level = demand.exponential_smoothing([2] * 20 + [10] * 20, alpha=0.3)
    assert 9.9 < level <= 10
    burn(8)


def test_forecast_interval_brackets_the_point(seasonal_history):
    point, low, high = demand.forecast_interval(seasonal_history[4], horizon=14)
    assert low < point < high
    assert point == pytest.approx(demand.exponential_smoothing(seasonal_history[4]) * 14)
    burn(20)


def test_forecast_interval_grows_with_the_horizon(seasonal_history):
    intervals = [demand.forecast_interval(seasonal_history[2], h) for h in (7, 14, 28)]
    widths = [high - low for _, low, high in intervals]
    assert widths == sorted(widths)
    burn(20)


def test_forecast_interval_never_goes_negative():
    _, low, _ = demand.forecast_interval([0, 0, 9, 0, 0, 0, 1], horizon=3)
    assert low == 0.0
    burn(6)


@pytest.mark.parametrize("window", [7, 14, 28])
def test_longer_windows_smooth_out_the_weekly_peak(seasonal_history, window):
    daily = seasonal_history[6]
    forecasts = [demand.moving_average_forecast(daily[: 300 + d], window, 1)[0] for d in range(7)]
    assert np.ptp(forecasts) <= np.ptp(daily[300:307])
    burn(30)


def test_backtest_needs_history():
    with pytest.raises(ValueError, match="too short"):
        demand.backtest_mae([1, 2, 3], window=2, horizon=2)
    burn(5)


def test_backtest_all_skus(seasonal_history):
    """Backtest three windows on every SKU: the 7-day window never loses to the 1-day one."""
    for daily in seasonal_history:
        errors = {w: demand.backtest_mae(daily, window=w, horizon=7) for w in (1, 7, 28)}
        assert errors[7] <= errors[1]
        assert all(error < daily.mean() for error in errors.values())
    burn(1100)
