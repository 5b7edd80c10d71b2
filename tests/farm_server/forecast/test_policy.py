"""Pool policies: the forecast plan's rules (no scale-in on the forecast alone, caps)
and the baselines."""

from __future__ import annotations

import math

import numpy as np

from farm_server.forecast.demand import HOUR
from farm_server.forecast.models import HourOfWeek
from farm_server.forecast.planner import ForecastPolicy, Plan, choose, realized
from farm_server.forecast.policy import Histogram, KeepAlive, Oracle, Static
from tests.farm_server.forecast.forecast_data import MONDAY, seasonal_runs


def planned(levels: list[int], *, level: int = 0, keep_s: float = 0.0, cap: int = 16):
    """A policy with a fixed plan from MONDAY (no replanning)."""
    policy = ForecastPolicy(HourOfWeek(), warmup_s=20.0, cap=cap)
    policy.plan = Plan(MONDAY, MONDAY, np.array(levels), level, keep_s, 1.0)
    policy._next_plan = math.inf
    return policy


class TestForecastPolicy:
    def test_busy_hours_are_warmed_a_warm_up_ahead(self):
        """The level of the next hour applies from a warm-up before it starts."""
        policy = planned([0, 4])
        assert policy.target(MONDAY + HOUR - 21) == 0
        assert policy.target(MONDAY + HOUR - 20) == 4
        assert policy.next_change(MONDAY) == MONDAY + HOUR - 20

    def test_no_scale_in_on_the_forecast_alone_below_recent_demand(self):
        """When the forecast drops, the target stays at the demand of the last hour."""
        policy = planned([4, 0, 0])
        policy.observe(MONDAY + 1800, 2)
        policy.observe(MONDAY + 1805, 1)
        assert policy.target(MONDAY + HOUR + 60) == 3  # not 0: 3 workers claimed in the hour
        assert policy.target(MONDAY + 1805 + HOUR) == 0  # the claims are an hour old
        quiet = planned([4, 0])
        assert quiet.target(MONDAY + HOUR + 60) == 0  # nothing claimed: scale in

    def test_the_hold_is_never_above_the_level_planned_before(self):
        """Recent demand above the old level keeps the old level, not more."""
        policy = planned([2, 0])
        for k in range(5):
            policy.observe(MONDAY + 100 + k, 2)
        assert policy.target(MONDAY + HOUR + 60) == 2

    def test_keep_alive_after_a_claim(self):
        """After a claim the keep-alive level holds for keep_s, then the plan rules."""
        policy = planned([0, 0], level=3, keep_s=600.0)
        policy.observe(MONDAY + 100, 2)
        assert policy.target(MONDAY + 699) == 3
        assert policy.target(MONDAY + 700) == 0
        assert policy.next_change(MONDAY + 100) == MONDAY + 700

    def test_the_cap_bounds_every_target(self):
        """Plan, keep-alive and hold together never exceed the cap."""
        policy = planned([9, 9], level=12, keep_s=600.0, cap=5)
        policy.observe(MONDAY + 10, 8)
        assert policy.target(MONDAY + 20) == 5

    def test_replanning_learns_the_busy_hours(self):
        """After weeks of weekday-daytime claims, daytime is busy and the night is not."""
        runs = seasonal_runs(6, night=0.0)
        policy = ForecastPolicy(HourOfWeek(), warmup_s=20.0)
        cut = MONDAY + 5 * 7 * 86400  # a Monday
        for run in runs:
            if run.time < cut:
                policy.observe(run.time, run.workers)
        plan = policy.replan(cut)
        assert plan.levels[12] > 0  # Monday noon
        assert plan.levels[3] == 0  # Monday 03:00
        assert plan.expected_hit_rate >= 0.96


class TestChoose:
    def test_the_cheapest_plan_that_meets_the_objective(self):
        """Bursts of 3 runs seconds apart need 6 workers at the first; a keep-alive does not
        help (nothing follows within minutes), so busy hours get the level."""
        times, workers = [], []
        for day in range(7):
            for k in range(3):
                times.append(MONDAY + day * 86400 + 10 * HOUR + 60 + 5 * k)
                workers.append(2)
        scores = np.zeros(7 * 24)
        scores[10::24] = 6.0
        choice = choose(
            np.array(times), np.array(workers), scores, MONDAY,
            warmup_s=20.0, objective=0.95, cap=16,
        )  # fmt: skip
        assert choice.levels_for(scores).tolist() == [6 if s else 0 for s in scores]
        assert choice.hit_rate == 1.0
        assert choice.idle_s == 6 * 7 * HOUR

    def test_quiet_hours_get_a_lower_level_than_busy_ones(self):
        """Single runs in quiet hours need 2 workers, bursts of 3 in busy hours 6: each
        band gets what its claims need, and a higher forecast never gets fewer workers."""
        times, workers = [], []
        for day in range(7):
            for k in range(3):
                times.append(MONDAY + day * 86400 + 10 * HOUR + 60 + 5 * k)
            times.append(MONDAY + day * 86400 + 3 * HOUR + 60)
        times.sort()
        workers = [2] * len(times)
        scores = np.full(7 * 24, 0.5)
        scores[3::24] = 2.0
        scores[10::24] = 6.0
        choice = choose(
            np.array(times), np.array(workers), scores, MONDAY,
            warmup_s=20.0, objective=0.95, cap=16,
        )  # fmt: skip
        levels = choice.levels_for(scores)
        assert (levels[10], levels[3], levels[0]) == (6, 2, 0)
        assert choice.hit_rate == 1.0
        assert list(choice.band_levels) == sorted(choice.band_levels)

    def test_the_cap_limits_the_level_and_the_best_effort_is_returned(self):
        """A cap below the bursts' needs: the best hit rate within the cap."""
        times = np.array([MONDAY + 60 + 5 * k for k in range(4)])
        choice = choose(
            times, np.full(4, 2), np.full(24, 1.0), MONDAY, warmup_s=20.0, objective=0.95, cap=3
        )
        assert max(choice.busy_level, choice.keep_level) <= 3
        assert choice.hit_rate == 3 / 8


class TestBaselines:
    def test_static(self):
        """static:N always wants N."""
        assert (Static(3).target(0.0), Static(3).next_change(0.0), Static(3).name) == (
            3,
            math.inf,
            "static:3",
        )

    def test_keepalive(self):
        """keepalive:S keeps the claim's workers for S seconds."""
        policy = KeepAlive(60.0)
        policy.observe(100.0, 2)
        assert (policy.target(159.0), policy.target(160.0)) == (2, 0)

    def test_histogram_prewarms_and_keeps_alive_by_the_idle_times(self):
        """Regular 10-minute gaps: empty right after a claim, warm around the next one."""
        policy = Histogram(warmup_s=20.0)
        for k in range(30):
            policy.observe(k * 600.0, 2)
        last = 29 * 600.0
        assert policy.target(last + 60) == 0
        assert policy.target(last + 600) == 2
        assert policy.target(last + 700) == 0

    def test_oracle_starts_exactly_one_warm_up_ahead(self):
        """The oracle wants a run's workers from a warm-up before it until it arrives."""
        oracle = Oracle([100.0, 100.0, 500.0], [2, 1, 2], warmup_s=20.0)
        assert [oracle.target(t) for t in (79.0, 80.0, 99.0, 100.0)] == [0, 3, 3, 0]
        assert oracle.next_change(0.0) == 80.0
        assert oracle.next_change(80.0) == 100.0


class TestSelfCheck:
    def test_plans_that_fell_short_raise_the_next_objective(self):
        """An empty plan met none of the claims that came: the next plan aims higher,
        by at most max_correction; plans that served every claim add nothing."""
        policy = ForecastPolicy(HourOfWeek(), warmup_s=20.0)
        times = np.array([MONDAY + 3600.0, MONDAY + 7200.0])
        workers = np.array([2, 2])
        policy._plans = [Plan(MONDAY, MONDAY, np.zeros(24, dtype=int), 0, 0.0, 1.0)]
        assert realized(times, workers, policy._plans, MONDAY, MONDAY + 86400, 20.0) == 0.0
        assert policy._correction(MONDAY + 86400, times, workers) == 0.03
        policy._plans = [Plan(MONDAY, MONDAY, np.full(24, 2), 0, 0.0, 1.0)]
        assert policy._correction(MONDAY + 86400, times, workers) == 0.0
