"""What ``GET /api/swarm/status`` and ``/metrics`` report, read from the pool (pure views).

Status version 1 (``farm status --json``): ``profiles[]`` with counts per state, health,
targets and warm-up times; ``workers[]`` with id, profile, state, pid, ages and the
readiness report summary; ``totals`` with claims served and the hit rate.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Iterator
from typing import Any

from farm_server.pool import STATES, Pool, ProfileEntry, Worker

__all__ = ["STATUS_VERSION", "PoolCollector", "profile_view", "status", "worker_view"]

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
        "ready": {
            "ok": report.get("ok"),
            "tests": len(report.get("tests", [])),
            "failed": report.get("failed", 0),
            "modules": len(report.get("modules", [])),
            "warmup_hook": report.get("warmup_hook"),
            "heap": report.get("heap") or {},
        }
        if worker.report is not None
        else None,
    }


def profile_view(
    entry: ProfileEntry, workers: Iterable[Worker], pool: Pool, now: float
) -> dict[str, Any]:
    counts = dict.fromkeys(STATES[:-1], 0)
    for worker in workers:
        if worker.profile_key == entry.key and worker.state in counts:
            counts[worker.state] += 1
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
        "last_claim_age_s": _age(entry.last_claim, now),
        "warmup_s_median": round(statistics.median(times), 3) if times else None,
    }


def status(
    pool: Pool, *, now: float, totals: tuple[int, int, int], extra: dict[str, Any]
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
            "profiles": [profile_view(p, workers, pool, now) for p in profiles],
            "workers": [worker_view(w, now) for w in sorted(workers, key=lambda w: w.spawned)],
        }


class PoolCollector:
    """prometheus_client collector: reads the pool at scrape time (no duplicated state)."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        workers = GaugeMetricFamily(
            "shadowfarm_workers",
            "Live farm workers by profile and state",
            labels=["profile", "state"],
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
            claims = self.pool.claims
            requested, granted, rejected = (
                self.pool.requested,
                self.pool.granted,
                self.pool.rejections,
            )
        yield workers
        yield warmup
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
