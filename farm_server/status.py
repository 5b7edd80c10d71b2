"""What ``GET /api/swarm/status`` and ``/metrics`` report, read from the pool (pure views).

Status version 1 (``farm status --json``): ``profiles[]`` with counts per state, the
warming workers' steps (importing, collecting, warm-up hook, shadow tests k of n,
settling), health, targets, warm-up times and ``learned`` (the max age learned from how
its workers ended: :mod:`.learning`); ``workers[]`` with id, profile, state, pid, ages,
the warm-up step and the readiness report summary (the heap at hand-off: gc-tracked and
frozen objects, RSS); ``totals`` with claims served and the hit rate.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from farm_server.learning import Learned
from farm_server.pool import STATES, Pool, ProfileEntry, Worker

__all__ = [
    "STATUS_VERSION",
    "PoolCollector",
    "forecast_view",
    "idle_worker_s",
    "profile_view",
    "status",
    "worker_view",
]

STATUS_VERSION = 1


def _age(since: float | None, now: float) -> float | None:
    return None if since is None else round(now - since, 3)


def worker_view(worker: Worker, now: float) -> dict[str, Any]:
    report = worker.report or {}
    return {
        "id": worker.id,
        "profile": worker.profile_key,
        "state": worker.state,
        "pid": worker.pid,
        "age_s": _age(worker.spawned, now),
        "warmup_s": None if worker.ready is None else round(worker.ready - worker.spawned, 3),
        "claim": worker.claim_id,
        "connected": worker.connected is not None,
        "end_reason": worker.end_reason or None,
        "expects": worker.expects or None,
        "collection": worker.collection or None,
        "progress": progress_view(worker, now),
        "ready": {
            "ok": report.get("ok"),
            "tests": len(report.get("tests", [])),
            "failed": report.get("failed", 0),
            "modules": len(report.get("modules", [])),
            "warmup_hook": report.get("warmup_hook"),
            "heap": report.get("heap") or {},
            "prepared": report.get("prepared", 0),
            "prepared_error": report.get("prepared_error") or None,
        }
        if worker.report is not None
        else None,
    }


def progress_view(worker: Worker, now: float) -> dict[str, Any] | None:
    """A warming worker's step: {"step", "done", "total", "step_s", "warming_s"}."""
    if worker.state != "warming":
        return None
    step = worker.progress or {"step": "starting", "done": None, "total": None}
    return {
        "step": step["step"],
        "done": step["done"],
        "total": step["total"],
        "step_s": _age(step.get("since", worker.spawned), now),
        "warming_s": _age(worker.spawned, now),
    }


def profile_view(
    entry: ProfileEntry, workers: Iterable[Worker], pool: Pool, now: float
) -> dict[str, Any]:
    counts = dict.fromkeys(STATES[:-1], 0)
    warming = []
    for worker in workers:
        if worker.profile_key == entry.key and worker.state in counts:
            counts[worker.state] += 1
        if worker.profile_key == entry.key and worker.state == "warming":
            warming.append({"worker": worker.id, **(progress_view(worker, now) or {})})
    low, high = pool.target(entry, now)
    times = entry.warmup_times
    return {
        "key": entry.key,
        "rootdir": entry.profile.rootdir,
        "interpreter": entry.profile.interpreter,
        "python_version": entry.profile.python_version,
        "distributions_hash": entry.profile.distributions_hash,
        "warm_modules": list(entry.profile.warm_modules),
        "shadow_tests": len(entry.shadow_tests),
        "health": entry.health,
        "drained": entry.drained,
        "unfit": entry.unfit or None,
        "min_warm": low,
        "max_warm": high,
        "counts": counts,
        "warming": warming,
        "last_claim_age_s": _age(entry.last_claim, now),
        "warmup_s_median": round(statistics.median(times), 3) if times else None,
        "warmup_s_last": round(times[-1], 3) if times else None,
        "forecast": forecast_view(pool, entry.key, now),
    }


def idle_worker_s(pool: Pool, key: str, now: float) -> float:
    """Seconds the profile's workers of this daemon life spent warming or warm, unclaimed."""
    total = 0.0
    for worker in pool.workers.values():
        if worker.profile_key == key:
            until = worker.claimed or worker.ended or now
            total += max(0.0, until - worker.spawned)
    return total


def forecast_view(pool: Pool, key: str, now: float, hours: int = 6) -> dict[str, Any] | None:
    """The forecast policy's view of a profile (None when forecasting is off)."""
    if not pool.config.forecast or pool.book is None:
        return None
    policy = pool.book.policies.get(key)
    plan = getattr(policy, "plan", None)
    if policy is None or plan is None:
        return None
    fc = plan.forecast
    hour = now // 3600 * 3600
    ahead = [hour + h * 3600 for h in range(hours)]
    return {
        "model": getattr(getattr(policy, "forecaster", None), "chosen", None) or (fc and fc.model),
        "target": policy.target(now),
        "next_hours": [
            {
                "hour": t,
                "median": fc.at(t) if fc else None,
                "p95": fc.at(t, 0.95) if fc else None,
                "target": plan.level_at(t),
            }
            for t in ahead
        ],
        "hit_rate": pool.book.hit_rate(key),
        "idle_worker_s": round(idle_worker_s(pool, key, now), 1),
        "keep_alive_s": plan.keep_s,
        "keep_alive_workers": plan.level,
        "planned_hit_rate": round(plan.expected_hit_rate, 4),
    }


def status(
    pool: Pool,
    *,
    now: float,
    totals: tuple[int, int, int],
    extra: dict[str, Any],
    learned: Mapping[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The whole status document; ``totals`` = (claims, requested, granted) of the farm's life."""
    with pool.lock:
        workers = list(pool.live())
        profiles = [p for p in pool.profiles.values() if p.retired is None]
        claims, requested, granted = totals
        return {
            "version": STATUS_VERSION,
            **extra,
            "config": pool.config.model_dump(),
            "totals": {
                "claims": claims,
                "requested": requested,
                "granted": granted,
                "hit_rate": round(granted / requested, 3) if requested else None,
                "rejected_connections": pool.rejections,
                "live_workers": len(workers),
                "warming_deferred": pool.deferred or None,
            },
            "profiles": [
                {**profile_view(p, workers, pool, now), "learned": (learned or {}).get(p.key)}
                for p in profiles
            ],
            "workers": [worker_view(w, now) for w in sorted(workers, key=lambda w: w.spawned)],
        }


class PoolCollector:
    """prometheus_client collector: reads the pool at scrape time (no duplicated state)."""

    def __init__(
        self, pool: Pool, learned: Callable[[], Mapping[str, Learned]] = lambda: {}
    ) -> None:
        self.pool = pool
        #: each live profile's learned max age (read from the store at scrape time)
        self.learned = learned

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        workers = GaugeMetricFamily(
            "shadowfarm_workers",
            "Live farm workers by profile and state",
            labels=["profile", "state"],
        )
        target = GaugeMetricFamily(
            "shadowfarm_pool_target",
            "Unclaimed workers the pool wants now, per profile",
            labels=["profile"],
        )
        forecast = GaugeMetricFamily(
            "shadowfarm_forecast_demand",
            "Forecast workers claimed in the current hour (median), per profile",
            labels=["profile"],
        )
        hit_rate = GaugeMetricFamily(
            "shadowfarm_pool_hit_rate",
            "Warm workers granted / requested since start, per profile (forecast on)",
            labels=["profile"],
        )
        idle = GaugeMetricFamily(
            "shadowfarm_pool_idle_worker_seconds",
            "Worker-seconds spent warming or warm unclaimed since start, per profile",
            labels=["profile"],
        )
        warmup = GaugeMetricFamily(
            "shadowfarm_warmup_seconds_median",
            "Median warm-up time per profile",
            labels=["profile"],
        )
        with self.pool.lock:
            for entry in self.pool.profiles.values():
                if entry.retired is not None:
                    continue
                for state in STATES[:-1]:
                    n = len(self.pool.live(state, entry.key))
                    workers.add_metric([entry.key, state], n)
                if entry.warmup_times:
                    warmup.add_metric([entry.key], statistics.median(entry.warmup_times))
                now = self.pool.clock()
                target.add_metric([entry.key], self.pool.target(entry, now)[0])
                view = forecast_view(self.pool, entry.key, now, hours=1)
                if view and view["next_hours"][0]["median"] is not None:
                    forecast.add_metric([entry.key], view["next_hours"][0]["median"])
                if view and view["hit_rate"] is not None:
                    hit_rate.add_metric([entry.key], view["hit_rate"])
                idle.add_metric([entry.key], idle_worker_s(self.pool, entry.key, now))
            claims = self.pool.claims
            requested, granted, rejected = (
                self.pool.requested,
                self.pool.granted,
                self.pool.rejections,
            )
        max_age = GaugeMetricFamily(
            "shadowfarm_profile_max_age_tests",
            "Tests a worker of the profile may serve before runs recycle it (learned)",
            labels=["profile"],
        )
        sick = GaugeMetricFamily(
            "shadowfarm_profile_sick_workers",
            "Workers of the profile that crashed or were replaced sick, in the memory window",
            labels=["profile", "kind"],
        )
        for key, learned in self.learned().items():
            if learned.max_age.tests is not None:
                max_age.add_metric([key], learned.max_age.tests)
            sick.add_metric([key, "crashed"], learned.crashes)
            sick.add_metric([key, "replaced"], learned.sick - learned.crashes)
        yield max_age
        yield sick
        yield workers
        yield warmup
        yield target
        yield forecast
        yield hit_rate
        yield idle
        yield CounterMetricFamily("shadowfarm_claims", "Claims served since start", value=claims)
        yield CounterMetricFamily(
            "shadowfarm_workers_requested", "Workers asked for", value=requested
        )
        yield CounterMetricFamily(
            "shadowfarm_workers_granted", "Warm workers handed out", value=granted
        )
        yield CounterMetricFamily(
            "shadowfarm_rejected_connections", "Worker connections refused by auth", value=rejected
        )
