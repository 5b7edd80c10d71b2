"""The swarm policy, pure: worker range, demand, hysteresis, caps, budget, target."""

from __future__ import annotations

import dataclasses
import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_shadowfarm.swarm.policy import (
    Limits,
    SwarmState,
    WorkerRange,
    cpu_cap,
    decide,
    demand,
    projected_finish_s,
)


def state(**changes: object) -> SwarmState:
    """A mid-run state: 2 workers, 40 s of short I/O-bound tests left, 2 s start-up."""
    base = SwarmState(
        now_s=10.0,
        workers=2,
        busy=2,
        pending_count=100,
        pending_s=40.0,
        running_s=(0.2, 0.1),
        spent_ws=20.0,
        startup_s=2.0,
        test_s=0.4,
        cpu_fraction=0.05,
        cores_available=2.0,
        last_change_s=None,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


LIMITS = Limits(WorkerRange(1, 6))


class TestWorkerRange:
    def test_min_and_max_are_parsed(self) -> None:
        """ "2:6" is 2..6."""
        assert WorkerRange.parse("2:6") == WorkerRange(2, 6)

    def test_a_single_number_is_the_maximum_from_one(self) -> None:
        """ "6" means 1:6."""
        assert WorkerRange.parse(" 6 ") == WorkerRange(1, 6)

    @pytest.mark.parametrize("text", ["0:3", "4:2", "a:b", "", "1:", "-1:2"])
    def test_bad_ranges_say_what_is_allowed(self, text: str) -> None:
        """A range that is not 1 <= MIN <= MAX is a ValueError that shows the form."""
        with pytest.raises(ValueError, match=r"MIN"):
            WorkerRange.parse(text)

    def test_it_prints_as_it_is_written(self) -> None:
        """str() gives back MIN:MAX."""
        assert str(WorkerRange(1, 4)) == "1:4"


class TestLimits:
    @pytest.mark.parametrize(("up", "down"), [(0.5, 0.5), (0.5, 0.8), (1.2, 0.5)])
    def test_scale_down_must_be_below_scale_up(self, up: float, down: float) -> None:
        """Thresholds without a band between them are refused."""
        with pytest.raises(ValueError, match="scale_down"):
            Limits(WorkerRange(1, 2), scale_up=up, scale_down=down)


class TestProjection:
    def test_more_workers_finish_the_work_sooner_after_their_start_up(self) -> None:
        """Going 2 -> 4 with 40 s of work: 2 s at 2 workers, then 36 s over 4."""
        assert projected_finish_s(state(running_s=()), 4) == pytest.approx(2.0 + 36.0 / 4)

    def test_a_test_cannot_be_split(self) -> None:
        """The projection is never below the longest running test."""
        assert projected_finish_s(state(pending_s=0.0, running_s=(5.0, 0.1)), 6) == 5.0

    def test_the_cpu_cap_limits_the_speed(self) -> None:
        """With a cap of 2 effective workers, 4 workers go no faster than 2."""
        assert projected_finish_s(state(), 4, cap=2.0) == pytest.approx(
            projected_finish_s(state(), 2)
        )

    def test_cpu_cap_counts_cores_per_cpu_share(self) -> None:
        """CPU demand 0.1 on 2 free cores: 20 workers; CPU-bound: 2; unknown counts as CPU-bound."""
        assert cpu_cap(0.1, 2.0) == pytest.approx(20.0)
        assert cpu_cap(1.0, 2.0) == 2.0
        assert cpu_cap(None, 3.0) == 3.0

    def test_a_busy_host_still_counts_one_core(self) -> None:
        """Waiting workers cost next to nothing even when others use every core."""
        assert cpu_cap(0.05, 0.0) == pytest.approx(20.0)


class TestDecide:
    def test_much_work_grows_the_swarm(self) -> None:
        """40.3 s of work at 2 s start-up is 6.7 workers' worth: grow to the maximum."""
        decision = decide(state(), LIMITS)
        assert (decision.current, decision.workers) == (2, 6)
        assert "40.3 s of work left = 6.7 workers' worth" in decision.reason

    def test_growth_stops_at_the_pending_tests(self) -> None:
        """With 4 tests nobody holds, 2 more workers at most (each holds two)."""
        decision = decide(state(pending_count=4, pending_s=40.0), LIMITS)
        assert decision.workers == 4
        assert "only 4 tests left" in decision.reason

    def test_cpu_bound_tests_do_not_grow_past_the_free_cores(self) -> None:
        """CPU demand 0.95 on 2 free cores: stay at 2."""
        decision = decide(state(workers=1, busy=1, cpu_fraction=0.95), LIMITS)
        assert decision.workers == 2
        assert "CPU" in decision.reason

    def test_a_cpu_bound_swarm_far_above_the_free_cores_shrinks(self) -> None:
        """CPU demand 1.0, one free core, 4 workers: back to 1 (they only slow each other)."""
        decision = decide(state(workers=4, busy=4, cpu_fraction=1.0, cores_available=1.0), LIMITS)
        assert decision.workers == 1
        assert decision.reason.startswith("CPU: 4 workers of CPU demand 1.00")

    def test_the_cpu_rule_has_a_band(self) -> None:
        """Two CPU-bound workers on one free core stay: shrinking starts above cap / 0.5."""
        decision = decide(state(workers=2, busy=2, cpu_fraction=1.0, cores_available=1.0), LIMITS)
        assert decision.change == 0

    def test_no_test_left_to_hand_out_drains_the_idle_workers(self) -> None:
        """Pending empty, 1 of 4 busy: shrink to 1."""
        decision = decide(
            state(workers=4, busy=1, pending_count=0, pending_s=0.0, running_s=(3.0,)), LIMITS
        )
        assert decision.workers == 1
        assert "idle" in decision.reason

    def test_idle_draining_keeps_the_minimum(self) -> None:
        """Never below MIN, even when idle."""
        limits = Limits(WorkerRange(3, 6))
        decision = decide(state(workers=4, busy=1, pending_count=0, pending_s=0.0), limits)
        assert decision.workers == 3

    def test_little_work_left_shrinks_the_swarm(self) -> None:
        """0.8 s of 0.4 s tests left on 6 workers: keep 1."""
        decision = decide(state(workers=6, busy=6, pending_count=2, pending_s=0.8), LIMITS)
        assert decision.workers == 2

    def test_running_workers_are_kept_while_they_have_tests(self) -> None:
        """12 s of 0.4 s tests on 4 workers stays: their start-up is paid already."""
        decision = decide(state(workers=4, busy=4, pending_s=12.0, running_s=()), LIMITS)
        assert decision.change == 0

    def test_workers_idling_behind_a_long_test_are_drained(self) -> None:
        """A 30 s test running, 10 s of other work on 4 workers: 2 finish it as early."""
        decision = decide(state(workers=4, busy=4, pending_s=10.0, running_s=(30.0,)), LIMITS)
        assert decision.workers == 2
        assert "the longest test left ends in 30.0 s" in decision.reason

    def test_a_long_test_not_started_yet_counts_too(self) -> None:
        """The longest pending test bounds the finish like a running one."""
        limits = Limits(WorkerRange(1, 6))
        busy = state(workers=4, busy=4, pending_s=40.0, running_s=(), longest_pending_s=30.0)
        assert decide(busy, limits).workers == 2

    def test_no_growth_when_a_long_test_decides_the_end(self) -> None:
        """More workers cannot finish before a 30 s test: growth would not finish sooner."""
        decision = decide(state(workers=2, pending_s=10.0, running_s=(30.0,)), LIMITS)
        assert decision.change == 0

    def test_the_cool_down_holds_every_change(self) -> None:
        """1 s after a change nothing moves, however much work there is."""
        decision = decide(state(last_change_s=9.0), LIMITS)
        assert decision.change == 0
        assert decision.reason == "cool-down"

    def test_below_the_minimum_grows_at_once(self) -> None:
        """Fewer workers than MIN (a crash): back to MIN, cool-down or not."""
        decision = decide(state(workers=1, last_change_s=9.9), Limits(WorkerRange(2, 4)))
        assert decision.workers == 2

    def test_work_gone_before_a_new_worker_starts_is_no_reason_to_grow(self) -> None:
        """3.6 s of work at 2 workers with a 2 s start-up: growing would not finish sooner."""
        limits = Limits(WorkerRange(1, 6), amortize=0.5)
        decision = decide(state(pending_s=3.6, running_s=()), limits)
        assert decision.change == 0
        assert "would not finish sooner" in decision.reason


class TestTarget:
    def test_a_generous_target_keeps_the_swarm_small(self) -> None:
        """40 s of work, 200 s left: 2 workers meet it, no growth."""
        decision = decide(state(), Limits(WorkerRange(1, 6), target_s=210.0))
        assert decision.workers <= 2

    def test_a_tight_target_grows_to_the_smallest_swarm_that_meets_it(self) -> None:
        """The chosen swarm's projected finish meets the target; one fewer would not."""
        limits = Limits(WorkerRange(1, 16), target_s=22.0)
        decision = decide(state(), limits)
        assert decision.workers > 2
        left = 22.0 - 10.0
        assert projected_finish_s(state(), decision.workers) <= left
        # the 0.8 threshold plans workers 80% busy: one below ceil(D) would miss
        need = demand(state(), limits)
        assert projected_finish_s(state(), math.ceil(need) - 1) > left

    def test_a_target_out_of_reach_asks_for_the_maximum(self) -> None:
        """Past the target, more workers are the only help: grow to MAX."""
        decision = decide(state(now_s=30.0), Limits(WorkerRange(1, 5), target_s=20.0))
        assert decision.workers == 5


class TestBudget:
    def test_a_budget_below_the_cost_of_growth_holds_the_swarm(self) -> None:
        """20 ws spent + 40 s of work already is 60 ws: a budget of 61 allows no new worker."""
        decision = decide(state(), Limits(WorkerRange(1, 6), budget_ws=61.0))
        assert decision.change == 0
        assert "budget" in decision.reason

    def test_a_budget_allows_the_growth_it_can_pay(self) -> None:
        """Each new worker adds its start-up to the cost; the grown swarm fits the budget."""
        limits = Limits(WorkerRange(1, 6), budget_ws=66.0)
        decision = decide(state(), limits)
        assert 2 < decision.workers < 6
        cost = 20.0 + decision.workers * projected_finish_s(state(), decision.workers, 40.0)
        assert cost <= 66.0


# --- properties -------------------------------------------------------------------------

ranges = st.integers(1, 8).flatmap(
    lambda lo: st.builds(WorkerRange, st.just(lo), st.integers(lo, 12))
)
limits_st = st.builds(
    Limits,
    ranges,
    budget_ws=st.none() | st.floats(1.0, 500.0),
    target_s=st.none() | st.floats(1.0, 120.0),
    scale_up=st.floats(0.6, 1.0),
    scale_down=st.floats(0.1, 0.55),
)


@st.composite
def states(draw: st.DrawFn) -> SwarmState:
    workers = draw(st.integers(0, 14))
    pending_count = draw(st.integers(0, 400))
    return SwarmState(
        now_s=draw(st.floats(0.0, 100.0)),
        workers=workers,
        busy=draw(st.integers(0, workers)),
        pending_count=pending_count,
        pending_s=draw(st.floats(0.0, 500.0)) if pending_count else 0.0,
        running_s=tuple(draw(st.lists(st.floats(0.0, 30.0), max_size=workers))),
        spent_ws=draw(st.floats(0.0, 1000.0)),
        startup_s=draw(st.floats(0.01, 10.0)),
        test_s=draw(st.floats(0.0, 10.0)),
        cpu_fraction=draw(st.none() | st.floats(0.0, 1.0)),
        cores_available=draw(st.floats(0.0, 8.0)),
        last_change_s=draw(st.none() | st.floats(0.0, 100.0)),
        starting=draw(st.integers(0, workers)),
        longest_pending_s=draw(st.floats(0.0, 60.0)),
    )


class TestProperties:
    @given(states(), limits_st)
    @settings(max_examples=150, deadline=None)
    def test_never_above_max_nor_below_min_or_one(self, s: SwarmState, limits: Limits) -> None:
        """Whatever the state, the answer lies in [max(MIN, 1), MAX]."""
        decision = decide(s, limits)
        assert max(1, limits.workers.low) <= decision.workers <= limits.workers.high

    @given(states(), limits_st)
    @settings(max_examples=150, deadline=None)
    def test_growth_fits_the_budget(self, s: SwarmState, limits: Limits) -> None:
        """A decision to grow never projects a cost above the budget."""
        decision = decide(s, limits)
        if decision.change > 0 and limits.budget_ws is not None and s.workers >= limits.workers.low:
            cap = cpu_cap(s.cpu_fraction, s.cores_available)
            cost = s.spent_ws + decision.workers * projected_finish_s(s, decision.workers, cap)
            assert cost <= limits.budget_ws + 1e-9

    @given(states(), limits_st)
    @settings(max_examples=150, deadline=None)
    def test_a_change_is_never_reversed_by_the_same_state(
        self, s: SwarmState, limits: Limits
    ) -> None:
        """Decide, apply, decide again on the same work after the cool-down: no way back."""
        first = decide(s, limits)
        if first.change == 0 or s.workers < limits.workers.low or s.workers > limits.workers.high:
            return
        grew = first.change > 0
        after = dataclasses.replace(
            s,
            workers=first.workers,
            # new workers are starting (and count as busy); drained ones go idle-first
            busy=s.busy + first.change if grew else min(s.busy, first.workers),
            starting=s.starting + first.change if grew else min(s.starting, first.workers),
            last_change_s=s.now_s - limits.cooldown_s,
        )
        second = decide(after, limits)
        assert first.change * second.change >= 0, (first, second)

    @given(
        st.lists(st.floats(0.0, 300.0), min_size=20, max_size=80),
        limits_st,
        st.floats(0.1, 1.0),
    )
    @settings(max_examples=100, deadline=None)
    def test_oscillating_work_does_not_thrash(
        self, works: list[float], limits: Limits, tick: float
    ) -> None:
        """Work jumping up and down every tick changes the swarm at most once per cool-down."""
        s = state(workers=limits.workers.low, busy=limits.workers.low, last_change_s=None)
        changes: list[float] = []
        for i, work in enumerate(works):
            now = 10.0 + i * tick
            s = dataclasses.replace(s, now_s=now, pending_s=work, running_s=())
            decision = decide(s, limits)
            if decision.change:
                changes.append(now)
                s = dataclasses.replace(
                    s, workers=decision.workers, busy=decision.workers, last_change_s=now
                )
        gaps = [b - a for a, b in itertools.pairwise(changes)]
        assert all(gap >= limits.cooldown_s - 1e-9 for gap in gaps)
        assert len(changes) <= 1 + len(works) * tick / limits.cooldown_s
