"""Demand summaries, intervals and distribution helpers."""

import numpy as np
import pytest
from _cost import burn
from scipy import stats
from shopkit import demand

WEEKLY = (0.8, 0.9, 0.9, 1.0, 1.2, 1.5, 0.7)


@pytest.fixture(scope="module")
def sales_history():
    """Two years of simulated daily sales for 24 SKUs (stands for a ~0.4 s data load)."""
    burn(400)
    return {
        f"SKU-{i:02d}": demand.simulate_sales(730, mean=2 + i, profile=WEEKLY, seed=i)
        for i in range(24)
    }


def test_summary_of_a_known_series():
    summary = demand.summarize([0, 2, 4, 6, 8])
    assert (summary.days, summary.total, summary.mean, summary.zero_days) == (5, 20, 4.0, 1)
    assert summary.std == pytest.approx(np.sqrt(10))
    burn(8)


def test_summary_matches_numpy(sales_history):
    daily = sales_history["SKU-05"]
    summary = demand.summarize(daily)
    assert summary.std == pytest.approx(np.std(daily, ddof=1))
    assert summary.p95 == pytest.approx(np.percentile(daily, 95))
    burn(12)


def test_single_day_has_no_spread():
    assert demand.summarize([3]).std == 0.0
    burn(5)


def test_coefficient_of_variation():
    assert demand.summarize([2, 4, 6]).cv == pytest.approx(0.5)
    assert demand.summarize([0, 0]).cv == float("inf")
    burn(6)


@pytest.mark.parametrize("bad", [[], [[1, 2], [3, 4]], [1, -2, 3]])
def test_bad_histories_are_refused(bad):
    with pytest.raises(ValueError, match="daily sales"):
        demand.summarize(bad)
    burn(5)


@pytest.mark.parametrize("confidence", [0.5, 0.8, 0.9, 0.95, 0.99])
def test_mean_interval_is_student_t(sales_history, confidence):
    daily = sales_history["SKU-03"]
    low, high = demand.mean_interval(daily, confidence)
    half_width = stats.t.ppf(0.5 + confidence / 2, df=len(daily) - 1) * stats.sem(daily)
    assert (high - low) / 2 == pytest.approx(half_width)
    assert low < daily.mean() < high
    burn(15)


def test_mean_interval_widens_with_confidence(sales_history):
    daily = sales_history["SKU-08"]
    intervals = [demand.mean_interval(daily, c) for c in (0.8, 0.9, 0.99)]
    widths = [high - low for low, high in intervals]
    assert widths == sorted(widths)
    burn(12)


def test_mean_interval_of_constant_sales_is_a_point():
    assert demand.mean_interval([4, 4, 4, 4]) == (4.0, 4.0)
    burn(5)


def test_bootstrap_agrees_with_student_t(sales_history):
    daily = sales_history["SKU-10"]
    t_low, t_high = demand.mean_interval(daily)
    b_low, b_high = demand.bootstrap_mean_interval(daily, resamples=1000)
    assert b_low == pytest.approx(t_low, rel=0.03)
    assert b_high == pytest.approx(t_high, rel=0.03)
    burn(40)


def test_bootstrap_interval_coverage():
    """Simulation study: the 90 % bootstrap interval covers the true mean ~90 % of the time."""
    true_mean = 6.0
    covered = 0
    for seed in range(200):
        daily = demand.simulate_sales(60, mean=true_mean, seed=seed)
        low, high = demand.bootstrap_mean_interval(daily, confidence=0.9, resamples=400, seed=seed)
        covered += low <= true_mean <= high
    assert 0.8 <= covered / 200 <= 0.97
    burn(1900)


@pytest.mark.parametrize(
    ("level", "z"),
    [(0.5, 0.0), (0.8, 0.8416), (0.9, 1.2816), (0.95, 1.6449), (0.975, 1.96), (0.99, 2.3263)],
)
def test_service_factor(level, z):
    assert demand.service_factor(level) == pytest.approx(z, abs=1e-4)
    burn(6)


@pytest.mark.parametrize("level", [0, 1])
def test_service_level_must_be_a_probability(level):
    with pytest.raises(ValueError, match="service level"):
        demand.service_factor(level)
    burn(5)


@pytest.mark.parametrize(("mean", "level", "stock"), [(2, 0.9, 4), (10, 0.95, 15), (0.5, 0.99, 3)])
def test_poisson_stock(mean, level, stock):
    assert demand.poisson_stock_for(mean, level) == stock
    assert stats.poisson.cdf(stock, mean) >= level
    burn(8)


def test_intermittent_demand():
    assert demand.is_intermittent([0, 0, 3, 0, 0, 0, 1])
    assert not demand.is_intermittent([1, 2, 0, 3, 1, 1, 2])
    assert demand.is_intermittent([0, 0, 0])
    burn(8)


def test_weekly_profile_recovers_the_pattern(sales_history):
    profile = demand.weekly_profile(sales_history["SKU-20"])
    assert profile.mean() == pytest.approx(1.0)
    assert profile.argmax() == 5  # the Saturday peak
    assert profile.argmin() == 6
    burn(20)


def test_weekly_profile_needs_a_week_of_sales():
    with pytest.raises(ValueError, match="week"):
        demand.weekly_profile([1, 2, 3])
    burn(5)


def test_robust_outliers_finds_the_spike():
    daily = [5, 6, 4, 5, 7, 5, 60, 6, 5, 4]
    assert demand.robust_outliers(daily) == [6]
    burn(8)


def test_robust_outliers_of_flat_sales():
    assert demand.robust_outliers([3] * 10) == []
    burn(5)


def test_simulated_sales_have_the_requested_mean(sales_history):
    means = [sales_history[f"SKU-{i:02d}"].mean() for i in range(24)]
    expected = [(2 + i) * np.mean(WEEKLY) for i in range(24)]
    assert means == pytest.approx(expected, rel=0.12)
    burn(25)
