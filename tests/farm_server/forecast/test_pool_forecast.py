"""The daemon's pool on the forecast policy: targets from the plan, the claim log kept
in the farm's database, and statsmodels optional."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

from farm_server.config import FarmConfig
from farm_server.daemon import policy_book
from farm_server.forecast import models
from farm_server.forecast.models import ForecastWarning
from farm_server.pool import Pool
from farm_server.status import PoolCollector, forecast_view
from farm_server.store import FarmStore
from shadowfarm_wire.profile import current_profile
from tests.farm_server.forecast.forecast_data import MONDAY, seasonal_runs

PROFILE = current_profile("/src/proj", distributions=[("numpy", "1")], executable="/py")
#: a Monday, five weeks after the first claims
CUT = MONDAY + 5 * 7 * 86400


class Launcher:
    def launch(self, spec: Any, interpreter: str, on_event: Any, on_exit: Any) -> Any:
        return None


class Clock:
    now = CUT - 30 * 86400.0

    def __call__(self) -> float:
        return self.now


def farm(tmp_path: Path, clock: Clock, **config: Any) -> tuple[Pool, FarmStore]:
    store = FarmStore.open(tmp_path / "farm.db")
    cfg = FarmConfig(forecast=True, default_max_warm=8, idle_ttl_s=60, **config)
    pool = Pool(cfg, Launcher(), tmp_path, clock=clock, idle=lambda: 8.0, cores=8)
    pool.book = policy_book(store, lambda: pool.config)
    return pool, store


def replay_claims(pool: Pool, store: FarmStore, clock: Clock) -> None:
    """Five weeks of weekday-daytime claims, recorded as the daemon records them."""
    for run in seasonal_runs(5, night=0.0):
        clock.now = run.time
        result = pool.claim(PROFILE, run.workers)
        store.record_claim(result.claim_id, PROFILE.key, run.workers, 0, {}, run.time)


class TestForecastPool:
    def test_the_pool_warms_busy_hours_and_drains_quiet_ones(self, tmp_path):
        """Monday noon gets workers; Monday 03:00 none (and no idle TTL cuts the day)."""
        clock = Clock()
        pool, store = farm(tmp_path, clock)
        replay_claims(pool, store, clock)
        entry = pool.profiles[PROFILE.key]
        clock.now = CUT + 3 * 3600
        assert pool.target(entry, clock.now)[0] == 0
        clock.now = CUT + 12 * 3600
        low, high = pool.target(entry, clock.now)
        assert 0 < low == high <= 8
        view = forecast_view(pool, PROFILE.key, clock.now)
        assert view is not None
        assert view["target"] == low
        assert len(view["next_hours"]) == 6
        assert view["hit_rate"] is not None
        assert view["idle_worker_s"] >= 0

    def test_a_restarted_farm_learns_from_the_stored_claims(self, tmp_path):
        """A new pool on the same database plans from the claim log at once."""
        clock = Clock()
        pool, store = farm(tmp_path, clock)
        replay_claims(pool, store, clock)
        store.close()
        again, store = farm(tmp_path, clock)
        entry, _ = again.register(PROFILE)
        clock.now = CUT + 12 * 3600
        assert again.target(entry, clock.now)[0] > 0
        assert len(store.claim_log(PROFILE.key)) == len(seasonal_runs(5, night=0.0))
        store.close()

    def test_forecast_off_keeps_the_static_pool(self, tmp_path):
        """Without config.forecast the pool keeps min_warm, as before."""
        clock = Clock()
        pool, store = farm(tmp_path, clock)
        pool.config = pool.config.updated({"forecast": False, "idle_ttl_s": 3600})
        entry, _ = pool.register(PROFILE)
        assert pool.target(entry, clock.now) == (2, 8)
        assert forecast_view(pool, PROFILE.key, clock.now) is None
        store.close()

    def test_without_statsmodels_the_pool_still_plans(self, tmp_path, monkeypatch):
        """A failed statsmodels import: fallback models, one warning, targets as usual."""
        monkeypatch.setitem(sys.modules, "statsmodels", None)
        monkeypatch.setitem(sys.modules, "statsmodels.api", None)
        monkeypatch.setattr(models, "_warned", False)
        clock = Clock()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pool, store = farm(tmp_path, clock)
            replay_claims(pool, store, clock)
            entry = pool.profiles[PROFILE.key]
            clock.now = CUT + 12 * 3600
            assert pool.target(entry, clock.now)[0] > 0
        assert [type(w.message) for w in caught] == [ForecastWarning]
        store.close()


class TestMetrics:
    def test_metrics_export_target_forecast_hit_rate_and_idle(self, tmp_path):
        """/metrics' collector has the forecast gauges per profile."""
        clock = Clock()
        pool, store = farm(tmp_path, clock)
        replay_claims(pool, store, clock)
        clock.now = CUT + 12 * 3600
        pool.reconcile()
        names = {m.name for m in PoolCollector(pool).collect()}
        assert {
            "shadowfarm_pool_target",
            "shadowfarm_forecast_demand",
            "shadowfarm_pool_hit_rate",
            "shadowfarm_pool_idle_worker_seconds",
        } <= names
        store.close()
