"""The replay simulator: exact for static pools, perfect for the oracle."""

from __future__ import annotations

import numpy as np
import pytest

from farm_server.forecast.models import HourOfWeek
from farm_server.forecast.planner import ForecastPolicy
from farm_server.forecast.policies import make_policy
from farm_server.forecast.simulate import simulate
from farm_server.forecast.trace import Run, eval_start
from tests.farm_server.forecast.forecast_data import seasonal_runs


def straightforward_static(runs: list[Run], n: int, warmup_s: float) -> tuple[int, int, float]:
    """(hits, claims, idle) of a pool of n slots: a claimed slot's replacement starts at once
    and is warm a warm-up later; only a warm slot is a hit."""
    window = eval_start(runs)
    ready = [-np.inf] * n
    hits = claims = 0
    for run in runs:
        got = 0
        for i in range(n):
            if got < run.workers and ready[i] <= run.time:
                ready[i] = run.time + warmup_s
                got += 1
        if run.time >= window:
            hits += got
            claims += run.workers
    return hits, claims, n * (runs[-1].time - window)


class TestSimulate:
    @pytest.mark.parametrize("n", [1, 2, 3, 8])
    def test_static_agrees_with_a_straightforward_replay(self, runs, n):
        """static:N hit rate and idle worker-seconds are exactly those of the slot replay."""
        result = simulate(runs, make_policy(f"static:{n}", runs), warmup_s=20.0)
        hits, claims, idle = straightforward_static(runs, n, 20.0)
        assert (result.hits, result.claims) == (hits, claims)
        assert result.idle_worker_s == pytest.approx(idle)
        assert result.runs == sum(r.time >= eval_start(runs) for r in runs)

    def test_a_worker_still_warming_is_not_a_hit(self):
        """The pool starts empty at the first run (a miss); of two runs 10 s apart with
        static:2, the second finds only warming workers (a miss)."""
        runs = [Run(1000.0, 2, 300.0), Run(40_000.0, 2, 300.0), Run(40_010.0, 2, 300.0)]
        result = simulate(runs, make_policy("static:2", runs), warmup_s=20.0, window=0.0)
        assert (result.hits, result.claims, result.wait_p95_s) == (2, 6, 20.0)

    def test_the_oracle_hits_every_claim_with_a_warm_up_of_idle_each(self, runs):
        """Oracle: hit rate 1, idle = warm-up x claims."""
        result = simulate(runs, make_policy("oracle", runs), warmup_s=20.0)
        assert result.hit_rate >= 0.99
        assert result.idle_worker_s == pytest.approx(20.0 * result.claims, rel=0.01)

    def test_the_forecast_policy_beats_static_pools(self):
        """On a seasonal trace the forecast meets its objective with less idle than the
        static pool that comes closest."""
        runs = seasonal_runs(6, rate=2.0)
        forecast = simulate(runs, ForecastPolicy(HourOfWeek()), warmup_s=20.0)
        assert forecast.hit_rate >= 0.93
        for n in range(1, 9):
            static = simulate(runs, make_policy(f"static:{n}", runs), warmup_s=20.0)
            assert not (
                static.hit_rate >= forecast.hit_rate
                and static.idle_worker_s <= forecast.idle_worker_s
            ), static

    def test_an_unknown_policy_says_what_is_accepted(self, runs):
        """A bad POLICY names the accepted forms."""
        with pytest.raises(ValueError, match="static:N, keepalive:SECONDS"):
            make_policy("static:x", runs)
