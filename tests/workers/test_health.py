"""The health monitor on recorded and synthetic RSS series: early on leaks, silent otherwise.

``data/*.csv`` were recorded from real xdist workers (``benchmarks/bench_health.py
--record``: the RSS and peak of each worker after each test) on the generated leaking
suite (6-18 MiB kept per test) and the healthy one (25 MiB kept per module from import,
6 MiB per test freed).
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_shadowfarm.workers.health import (
    HealthMonitor,
    Sample,
    Thresholds,
    score_for_tests_left,
)
from pytest_shadowfarm.workers.predictions import lead_tests
from pytest_shadowfarm.workers.trend import fit_trend, theil_sen

MIB = 1 << 20
DATA = Path(__file__).parent / "data"
LIMIT = 600 * MIB
CONTROLLER = 45 * MIB  # the controller's RSS in the recorded runs (~43 MiB)
STARTUP_S = 1.5


def recorded(name: str) -> list[Sample]:
    with (DATA / name).open() as f:
        return [
            Sample(
                int(row["tests_done"]),
                float(row["seconds"]),
                int(row["rss_bytes"]),
                int(row["peak_bytes"]) or None,
            )
            for row in csv.DictReader(f)
        ]


def series(
    rss: Callable[[int], float], n: int, *, pace_s: float = 0.2, peak: float = 0.0
) -> list[Sample]:
    """A synthetic worker: ``rss(i)`` MiB after test i (1-based), ``pace_s`` per test."""
    return [
        Sample(i, i * pace_s, int(rss(i) * MIB), int((rss(i) + peak) * MIB) if peak else None)
        for i in range(1, n + 1)
    ]


@dataclass
class Replay:
    """When each worker was told to prepare / swap, and when the limit was crossed."""

    prepare: dict[str, int]
    swap: dict[str, int]
    prepare_t: dict[str, float]
    crossed_at: int | None
    crossed_t: float | None
    reasons: dict[str, str]
    monitor: HealthMonitor


def replay(
    workers: Mapping[str, Sequence[Sample]],
    *,
    limit: int = LIMIT,
    outside: int = CONTROLLER,
    thresholds: Thresholds | None = None,
    remaining: Mapping[str, float] | None = None,
) -> Replay:
    """Feed the workers' samples test by test, as the controller would, until the limit."""
    monitor = HealthMonitor(limit, startup_s=STARTUP_S, thresholds=thresholds)
    prepare: dict[str, int] = {}
    swap: dict[str, int] = {}
    prepare_t: dict[str, float] = {}
    reasons: dict[str, str] = {}
    crossed_at = crossed_t = None
    for i in range(max(len(s) for s in workers.values())):
        now = 0.0
        for worker, samples in workers.items():
            if i < len(samples):
                monitor.observe(worker, samples[i])
                now = max(now, samples[i].t)
        total = outside + sum(s[min(i, len(s) - 1)].rss_bytes for s in workers.values())
        if total > limit:
            crossed_at, crossed_t = i + 1, now
            break
        for a in monitor.assess(now, outside_bytes=outside, remaining_tests=remaining):
            if a.decision != "ok":
                prepare.setdefault(a.worker, a.tests_done)
                prepare_t.setdefault(a.worker, now)
                reasons.setdefault(a.worker, a.reason)
            if a.decision == "swap":
                swap.setdefault(a.worker, a.tests_done)
    return Replay(prepare, swap, prepare_t, crossed_at, crossed_t, reasons, monitor)


class TestRecordedSeries:
    def test_a_real_leak_is_swapped_before_the_crash(self) -> None:
        """Recorded leaking workers: prepare, then swap >= 4 tests before the limit. Their
        tests took ~60 ms, so the whole way to the crash is shorter than a start-up: the
        replacement is asked for as soon as the trend can be known."""
        run = replay({"gw0": recorded("leaking_gw0.csv"), "gw1": recorded("leaking_gw1.csv")})
        assert run.crossed_at is not None
        for worker in ("gw0", "gw1"):
            assert run.prepare[worker] == Thresholds().min_samples
            assert run.prepare[worker] < run.swap[worker]
            assert run.crossed_at - run.swap[worker] >= 4
            assert run.reasons[worker].startswith("memory would reach the 600 MiB limit in ~")

    def test_a_leak_with_slower_tests_has_its_replacement_ready_before_the_crash(self) -> None:
        """0.3 s per test: prepare comes at least the start-up time before the limit."""
        run = replay({"gw0": series(lambda i: 60 + 12 * i, 60, pace_s=0.3)})
        assert run.crossed_t is not None
        assert run.crossed_t - run.prepare_t["gw0"] >= STARTUP_S
        assert run.prepare["gw0"] > Thresholds().min_samples  # not at once: no idle worker

    def test_the_recorded_leak_is_caught_at_a_tighter_limit_too(self) -> None:
        run = replay({"gw0": recorded("leaking_gw0.csv")}, limit=300 * MIB)
        assert run.crossed_at is not None
        assert run.crossed_at - run.swap["gw0"] >= 3

    def test_a_real_healthy_suite_at_72_percent_of_the_limit_is_left_alone(self) -> None:
        """Recorded healthy workers (25 MiB per module kept, per-test memory freed): all ok."""
        run = replay({"gw0": recorded("healthy_gw0.csv"), "gw1": recorded("healthy_gw1.csv")})
        assert run.crossed_at is None
        assert (run.prepare, run.swap) == ({}, {})
        peak = CONTROLLER + sum(
            max(s.rss_bytes for s in recorded(f"healthy_{w}.csv")) for w in ("gw0", "gw1")
        )
        assert 0.65 < peak / LIMIT < 0.8

    def test_the_healthy_series_is_left_alone_even_at_a_limit_just_above_its_peak(self) -> None:
        run = replay(
            {"gw0": recorded("healthy_gw0.csv"), "gw1": recorded("healthy_gw1.csv")},
            limit=470 * MIB,
        )
        assert (run.prepare, run.swap) == ({}, {})


class TestSyntheticSeries:
    def test_steady(self) -> None:
        run = replay({"gw0": series(lambda i: 400, 100)})
        assert (run.prepare, run.swap) == ({}, {})

    def test_noisy_steady(self) -> None:
        """+-8 MiB of noise around a level at 75% of the limit: never an alarm."""
        rng = random.Random(1)
        run = replay({"gw0": series(lambda i: 400 + rng.uniform(-8, 8), 200)})
        assert (run.prepare, run.swap) == ({}, {})

    @pytest.mark.parametrize("at", [3, 8, 12, 15, 20, 30])
    def test_a_step_up_then_flat_is_no_leak(self, at: int) -> None:
        """A module import's +150 MiB once, at any point of the window: never an alarm."""
        run = replay({"gw0": series(lambda i: 250 + (150 if i >= at else 0), 80)})
        assert run.crossed_at is None
        assert (run.prepare, run.swap) == ({}, {})

    def test_a_noisy_leak_is_caught(self) -> None:
        rng = random.Random(2)
        run = replay({"gw0": series(lambda i: 80 + 8 * i + rng.uniform(-10, 10), 100)})
        assert run.crossed_at is not None
        assert run.crossed_at - run.swap["gw0"] >= 3

    def test_a_leak_under_a_gc_sawtooth_is_caught(self) -> None:
        """+20 MiB per test freed every 5th test, +4 MiB kept per test: still caught."""
        run = replay({"gw0": series(lambda i: 60 + 4 * i + 20 * (i % 5), 200)})
        assert run.crossed_at is not None
        assert run.crossed_at - run.swap["gw0"] >= 3
        assert run.prepare["gw0"] < run.swap["gw0"]

    def test_a_gc_sawtooth_without_a_leak_is_no_leak(self) -> None:
        run = replay({"gw0": series(lambda i: 300 + 20 * (i % 5), 200)})
        assert (run.prepare, run.swap) == ({}, {})

    def test_a_leak_per_module_a_staircase_is_caught(self) -> None:
        """+30 MiB kept at each module's first test (every 5 tests): a leak, not a step."""
        run = replay({"gw0": series(lambda i: 60 + 30 * ((i + 4) // 5), 200)})
        assert run.crossed_at is not None
        assert run.crossed_at - run.swap["gw0"] >= 3

    def test_a_short_series_says_so(self) -> None:
        monitor = HealthMonitor(LIMIT)
        for sample in series(lambda i: 100 * i, 3):
            monitor.observe("gw0", sample)
        (a,) = monitor.assess(1.0)
        assert a.decision == "ok"
        assert a.reason == "too few samples (3 of 6)"

    def test_a_steady_worker_leaves_the_headroom_to_the_leaking_one(self) -> None:
        """Headroom is split by growth: next to a steady worker the leaker gets all of it."""
        leak = series(lambda i: 50 + 5 * i, 10)
        alone = HealthMonitor(LIMIT)
        paired = HealthMonitor(LIMIT)
        for sample in leak:
            alone.observe("gw0", sample)
            paired.observe("gw0", sample)
        for sample in series(lambda i: 200, 10):
            paired.observe("gw1", sample)
        (a,) = alone.assess(2.0)
        b = {x.worker: x for x in paired.assess(2.0)}
        assert a.share_bytes is not None
        assert b["gw0"].share_bytes == a.share_bytes - 200 * MIB
        assert b["gw1"].tests_left is None
        assert b["gw1"].decision == "ok"

    def test_a_worker_with_few_tests_left_for_it_is_left_alone(self) -> None:
        """It would reach its share in ~15 tests, but has only 5 to run: no replacement."""
        leak = {"gw0": series(lambda i: 200 + 10 * i, 20)}
        assert replay(leak, remaining=None).prepare
        assert not replay(leak, remaining={"gw0": 5}).prepare


class TestOtherSignals:
    def test_a_memory_error_in_setup_swaps_the_worker(self) -> None:
        monitor = HealthMonitor(LIMIT)
        monitor.observe("gw0", Sample(1, 0.1, 100 * MIB))
        monitor.observe_error("gw0", "MemoryError")
        (a,) = monitor.assess(1.0)
        assert (a.decision, a.reason) == ("swap", "1 MemoryError in setup")

    def test_oserrors_prepare_then_swap(self) -> None:
        monitor = HealthMonitor(LIMIT)
        monitor.observe("gw0", Sample(1, 0.1, 100 * MIB))
        monitor.observe_error("gw0", "OSError")
        assert monitor.assess(1.0)[0].decision == "prepare"
        monitor.observe_error("gw0", "OSError")
        monitor.observe_error("gw0", "OSError")
        assert monitor.assess(2.0)[0].decision == "swap"

    def test_other_errors_do_not_count(self) -> None:
        monitor = HealthMonitor(LIMIT)
        monitor.observe("gw0", Sample(1, 0.1, 100 * MIB))
        monitor.observe_error("gw0", "FileNotFoundError")
        assert monitor.assess(1.0)[0].decision == "ok"

    def test_a_worker_past_its_max_age_is_replaced(self) -> None:
        run = replay({"gw0": series(lambda i: 100, 60)}, thresholds=Thresholds(max_age_tests=50))
        assert run.swap["gw0"] == 48  # an age is exact: the two tests it holds before 50
        assert run.prepare["gw0"] < 46

    def test_the_max_age_is_the_cause_and_says_where_it_comes_from(self) -> None:
        """An age decision has cause "age" and names the max age and its basis."""
        th = Thresholds(max_age_tests=50, max_age_basis="learned by the farm")
        monitor = HealthMonitor(LIMIT, thresholds=th)
        for sample in series(lambda i: 100, 48):
            monitor.observe("gw0", sample)
        (a,) = monitor.assess(10.0)
        assert (a.decision, a.cause) == ("swap", "age")
        assert a.reason == "48 tests run, max age 50 tests (learned by the farm)"

    def test_a_worker_that_ends_its_share_before_its_max_age_is_left_alone(self) -> None:
        """Only ~2 tests left for it and 10 to its max age: no replacement for age."""
        monitor = HealthMonitor(LIMIT, thresholds=Thresholds(max_age_tests=50))
        for sample in series(lambda i: 100, 40):
            monitor.observe("gw0", sample)
        (a,) = monitor.assess(10.0, remaining_tests={"gw0": 2.0})
        assert a.decision == "ok"

    def test_a_max_age_in_seconds_stands_in_when_none_in_tests_is_known(self) -> None:
        """max_age_s: the worker's seconds since its first test, at its pace, as tests left."""
        monitor = HealthMonitor(LIMIT, thresholds=Thresholds(max_age_s=5.0))
        samples = series(lambda i: 100, 48)  # 0.2 s a test: 9.4 s after the first
        for sample in samples:
            monitor.observe("gw0", sample)
        (a,) = monitor.assess(samples[-1].t)
        assert (a.decision, a.cause) == ("swap", "age")
        assert "max age 5s" in a.reason

    def test_memory_pressure_prepares_the_fastest_growing_worker(self) -> None:
        monitor = HealthMonitor(8 << 30)
        for sample in series(lambda i: 100 + 2 * i, 10):
            monitor.observe("gw0", sample)
        for sample in series(lambda i: 300, 10):
            monitor.observe("gw1", sample)
        calm = {a.worker: a.decision for a in monitor.assess(2.0, pressure_pct=5.0)}
        assert calm == {"gw0": "ok", "gw1": "ok"}
        stalled = {a.worker: a for a in monitor.assess(2.1, pressure_pct=55.0)}
        assert stalled["gw0"].decision == "prepare"
        assert stalled["gw0"].reason.startswith("memory pressure 55% (PSI)")
        assert stalled["gw0"].cause == "pressure"
        assert stalled["gw1"].decision == "ok"


class TestDecisions:
    def test_swap_is_final_and_the_predictions_are_kept_for_the_report(self) -> None:
        monitor = HealthMonitor(LIMIT, startup_s=STARTUP_S)
        for sample in series(lambda i: 50 + 12 * i, 40):
            monitor.observe("gw0", sample)
            monitor.assess(sample.t, outside_bytes=CONTROLLER)
            if sample.tests_done == 40:
                break
        for sample in series(lambda i: 100, 30):  # it calms down: still swap
            monitor.observe("gw0", Sample(40 + sample.tests_done, 8 + sample.t, sample.rss_bytes))
        assert monitor.assess(20.0)[0].decision == "swap"
        kinds = [p.decision for p in monitor.predictions()]
        assert kinds == ["prepare", "swap"]
        swap = monitor.predictions()[1]
        assert swap.death_at_tests is not None
        assert swap.death_at_tests > swap.tests_done
        gone = monitor.forget("gw0")
        assert [p.decision for p in gone] == kinds
        assert monitor.assess(21.0) == []
        assert lead_tests(gone, swap.tests_done + 2) == pytest.approx(
            swap.death_at_tests - swap.tests_done - 2
        )
        assert lead_tests(gone[:1], 10) is None

    def test_an_older_sample_is_ignored(self) -> None:
        monitor = HealthMonitor(LIMIT)
        monitor.observe("gw0", Sample(5, 1.0, 100 * MIB))
        monitor.observe("gw0", Sample(4, 2.0, 900 * MIB))
        assert monitor.assess(2.0)[0].level_bytes == 100 * MIB

    def test_thresholds_are_checked(self) -> None:
        with pytest.raises(ValueError, match="0 < prepare < swap <= 1"):
            Thresholds(prepare=0.9, swap=0.8)
        with pytest.raises(ValueError, match="min_samples <= window"):
            Thresholds(min_samples=30, window=24)

    def test_the_score_meets_the_thresholds_at_the_lead_times(self) -> None:
        th = Thresholds()
        assert score_for_tests_left(0, 4, 20, th) == 1.0
        assert score_for_tests_left(4, 4, 20, th) == pytest.approx(th.swap)
        assert score_for_tests_left(20, 4, 20, th) == pytest.approx(th.prepare)
        assert score_for_tests_left(60, 4, 20, th) == 0.0
        assert score_for_tests_left(math.inf, 4, 20, th) == 0.0


class TestTrend:
    def test_theil_sen_fits_a_line_exactly(self) -> None:
        assert theil_sen([1, 2, 3, 4], [3, 5, 7, 9]) == (2.0, 1.0)

    def test_theil_sen_ignores_a_quarter_of_wild_points(self) -> None:
        xs = list(range(20))
        ys = [5.0 * x + (1000.0 if x % 4 == 0 else 0.0) for x in xs]
        line = theil_sen(xs, ys)
        assert line is not None
        assert line[0] == pytest.approx(5.0)

    def test_one_step_has_no_slope_wherever_it_is(self) -> None:
        """Half the pairs straddling a step (an even count) still give no growth."""
        for at in range(1, 12):
            ys = [40.0 if x < at else 67.0 for x in range(12)]
            trend = fit_trend([float(x) for x in range(12)], ys)
            assert trend is not None
            assert trend.slope == 0.0, at
            assert trend.level + trend.spread >= 67.0

    def test_one_point_has_no_trend(self) -> None:
        assert fit_trend([1.0], [2.0]) is None


@settings(max_examples=60, deadline=None)
@given(
    level=st.floats(min_value=60, max_value=420),
    noise=st.floats(min_value=0, max_value=6),
    seed=st.integers(0, 2**16),
    n=st.integers(6, 120),
)
def test_a_steady_worker_below_its_share_never_raises_an_alarm(
    level: float, noise: float, seed: int, n: int
) -> None:
    """Any flat series with bounded noise, peak under 80% of its room: always ok."""
    rng = random.Random(seed)
    run = replay({"gw0": series(lambda i: level + rng.uniform(-noise, noise), n)})
    assert (run.prepare, run.swap) == ({}, {})


@settings(max_examples=60, deadline=None)
@given(
    slope=st.floats(min_value=1.0, max_value=25.0),
    base=st.floats(min_value=40, max_value=200),
    pace=st.floats(min_value=0.05, max_value=2.0),
)
def test_any_steady_leak_is_swapped_before_it_crosses(
    slope: float, base: float, pace: float
) -> None:
    """A leak of 1-25 MiB per test that would cross after >= 10 tests: swapped >= 3 tests early."""
    if base + slope * 10 > (LIMIT - CONTROLLER) / MIB:
        return
    run = replay({"gw0": series(lambda i: base + slope * i, 2000, pace_s=pace)})
    assert run.crossed_at is not None
    assert run.crossed_at - run.swap["gw0"] >= 3


@settings(max_examples=80, deadline=None)
@given(
    base=st.floats(min_value=40, max_value=200),
    height=st.floats(min_value=0, max_value=200),
    at=st.integers(1, 60),
    noise=st.floats(min_value=0, max_value=2),
    seed=st.integers(0, 2**16),
)
def test_one_step_up_then_flat_never_raises_an_alarm(
    base: float, height: float, at: int, noise: float, seed: int
) -> None:
    """A single step of any height, at any test, ending below 80% of the room: always ok."""
    rng = random.Random(seed)
    run = replay(
        {"gw0": series(lambda i: base + (height if i >= at else 0) + rng.uniform(0, noise), 90)}
    )
    assert (run.prepare, run.swap) == ({}, {})


@settings(max_examples=40, deadline=None)
@given(
    flat_for=st.integers(6, 80),
    leak=st.floats(min_value=5, max_value=40),
    seed=st.integers(0, 2**16),
)
def test_a_flat_worker_that_starts_leaking_is_caught_as_soon_as_when_fitted_after_every_test(
    flat_for: int, leak: float, seed: int
) -> None:
    """A flat worker is not refitted after each test (the fit is the controller's main
    per-test cost), but a sample above its band is fitted at once: the alarm comes on the
    same test as with a fit after every test."""
    rng = random.Random(seed)
    samples = series(
        lambda i: 100 + rng.uniform(0, 0.5) + leak * max(0, i - flat_for), flat_for + 200
    )
    every = replay({"gw0": samples}, thresholds=Thresholds(refit_flat_tests=1))
    default = replay({"gw0": samples})
    assert default.crossed_at is not None
    assert (default.prepare, default.swap) == (every.prepare, every.swap)


def test_a_flat_worker_is_not_refitted_after_each_test(monkeypatch: pytest.MonkeyPatch) -> None:
    import pytest_shadowfarm.workers.health as health

    fits = 0
    real = health.fit_trend

    def counting(*args: object, **kwargs: object) -> object:
        nonlocal fits
        fits += 1
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(health, "fit_trend", counting)
    run = replay({"gw0": series(lambda i: 100 + (i % 3) * 0.01, 240)})
    assert (run.prepare, run.swap) == ({}, {})
    refit = Thresholds().refit_flat_tests
    assert fits <= 240 // refit + 2
