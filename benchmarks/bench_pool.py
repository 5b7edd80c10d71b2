"""Warm-pool policies replayed on CI demand traces: hit rate against idle workers.

For every trace (``time,workers,seconds``) in ``--traces`` (default: the shared
``data/demand`` folder next to the repository), and for a denser trace made from the
densest of them (``--dense FACTOR``, see :func:`denser`), prints per policy the hit rate,
the idle worker-seconds, idle as a multiple of the oracle's, and the p95 wait; whether
``forecast`` Pareto-dominates ``histogram`` and every ``static:N`` (none reaches its hit
rate with less idle); and the forecast's MASE beside the weekly seasonal naive's.

Then the live check: the daemon's own ``Pool`` (its claim path, reconcile pass and
forecast ``PolicyBook`` over a real SQLite claim log) replays the last days of a trace
in virtual time, with stand-in workers that are warm a warm-up after they start, and
its hit rate is compared with the simulator's on the same days. It runs in-process: the
daemon's clock is the wall clock, and a real worker's warm-up (seconds of imports) cannot
be compressed with a trace, so a time-compressed replay against the daemon process
would measure the warm-up, not the policy.

    python benchmarks/bench_pool.py                  # every trace, a 3x denser one, live check
    python benchmarks/bench_pool.py --traces DIR --dense 0
    python benchmarks/bench_pool.py --quick          # CI smoke: the smallest trace (without
                                                     # any, a seeded synthetic one), 4 policies
"""

from __future__ import annotations

import argparse
import heapq
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from farm_server.config import FarmConfig  # noqa: E402
from farm_server.daemon import policy_book  # noqa: E402
from farm_server.forecast.accuracy import score  # noqa: E402
from farm_server.forecast.demand import WEEK, hourly_demand  # noqa: E402
from farm_server.forecast.models import default_forecaster  # noqa: E402
from farm_server.forecast.planner import ForecastPolicy  # noqa: E402
from farm_server.forecast.policies import make_policy  # noqa: E402
from farm_server.forecast.simulate import SimResult, simulate  # noqa: E402
from farm_server.forecast.trace import Run, read_trace  # noqa: E402
from farm_server.pool import Pool  # noqa: E402
from farm_server.store import FarmStore  # noqa: E402
from shadowfarm_wire.profile import current_profile  # noqa: E402

DEFAULT_TRACES = REPO.parent / "shared" / "data" / "demand"
POLICIES = ["oracle", *(f"static:{n}" for n in range(1, 9)), "keepalive:300", "histogram"]


def denser(runs: list[Run], factor: float, seed: int = 0, gap_s: float = 60.0) -> list[Run]:
    """A trace ``factor`` times as busy with the same weekly shape, trend and bursts.

    The pushes of ``runs`` (rows within ``gap_s`` of the one before) give a rate per hour
    of week and a slow level (4-week moving mean); new pushes are drawn as a Poisson
    process at ``factor`` x that rate, each a copy of a random real push (its runs and
    their spacing). Superposing shifted copies of real traces instead would share whole
    weeks between a copy and its shift, which flatters the weekly naive forecast.
    """
    rng = np.random.default_rng(seed)
    pushes: list[list[Run]] = []
    for run in runs:
        if pushes and run.time - pushes[-1][-1].time <= gap_s:
            pushes[-1].append(run)
        else:
            pushes.append([run])
    starts = hourly_demand([(p[0].time, 1) for p in pushes], start=runs[0].time, end=runs[-1].time)
    y = starts.values
    how = starts.hour_of_week(np.arange(len(y)))
    profile = np.array([y[how == h].mean() for h in range(WEEK)])
    level = np.convolve(y, np.ones(4 * WEEK) / (4 * WEEK), mode="same") / max(y.mean(), 1e-9)
    out = []
    for i, lam in enumerate(factor * profile[how] * level):
        for _ in range(rng.poisson(lam)):
            t = starts.start + i * 3600 + rng.uniform(0, 3600)
            push = pushes[rng.integers(len(pushes))]
            out += [Run(round(t + r.time - push[0].time), r.workers, r.seconds) for r in push]
    return sorted(out, key=lambda r: r.time)


def dominated_by(forecast: SimResult, others: list[SimResult]) -> list[str]:
    return [
        o.policy
        for o in others
        if (o.policy == "histogram" or o.policy.startswith("static:"))
        and o.hit_rate >= forecast.hit_rate
        and o.idle_worker_s <= forecast.idle_worker_s
    ]


def table(name: str, runs: list[Run], policies: list[str], warmup_s: float) -> SimResult:
    per_hour = len(runs) / max(1.0, (runs[-1].time - runs[0].time) / 3600)
    print(f"\n== {name}: {len(runs)} runs, {per_hour:.2f} runs/h, warm-up {warmup_s:g}s")
    print(
        f"{'policy':<15}{'hit rate':>9}{'idle worker-s':>15}{'x oracle':>10}{'p95 wait':>10}"
        f"{'replay s':>10}"
    )
    results = []
    oracle = None
    for spec in policies:
        started = time.perf_counter()
        result = simulate(runs, make_policy(spec, runs, warmup_s), warmup_s)
        spent = time.perf_counter() - started
        oracle = oracle or (result if spec == "oracle" else None)
        ratio = result.idle_worker_s / oracle.idle_worker_s if oracle else float("nan")
        print(
            f"{spec:<15}{result.hit_rate:>9.4f}{result.idle_worker_s:>15,.0f}{ratio:>10.1f}"
            f"{result.wait_p95_s:>9g}s{spent:>10.1f}"
        )
        results.append(result)
    forecast = next(r for r in results if r.policy == "forecast")
    beaten = dominated_by(forecast, results)
    print(
        f"forecast Pareto-dominates histogram and static:1..8: {'yes' if not beaten else 'no'}"
        + (f" (dominated by {', '.join(beaten)})" if beaten else "")
    )
    series = hourly_demand([(r.time, r.workers) for r in runs])
    acc = score(series, runs[-1].time, default_forecaster(), 14)
    ratio = acc.mase / acc.seasonal_naive_mase
    print(
        f"forecast accuracy: model {acc.model}, MASE {acc.mase:.3f}, seasonal naive "
        f"{acc.seasonal_naive_mase:.3f}, ratio {ratio:.2f} (target <= 0.90)"
    )
    return forecast


# --- the live check: the daemon's pool in virtual time ------------------------------------


@dataclass
class Clock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Handle:
    pid: int
    worker_id: str
    pool: Pool | None = None
    running: bool = True

    def alive(self) -> bool:
        return self.running

    def terminate(self) -> None:
        if self.running and self.pool is not None:
            self.running = False
            self.pool.on_exit(self.worker_id, -15)

    kill = terminate

    def wait(self, timeout: float) -> int | None:
        return None if self.running else -15


@dataclass
class Launcher:
    """Stand-in worker processes: each is warm ``warmup_s`` of virtual time after it starts."""

    clock: Clock
    warmup_s: float
    pool: Pool | None = None
    events: list[tuple[float, int, str]] = field(default_factory=list)
    started: int = 0

    def launch(self, spec: Any, interpreter: str, on_event: Any, on_exit: Any) -> Handle:
        self.started += 1
        heapq.heappush(self.events, (self.clock.now + self.warmup_s, self.started, spec.id))
        return Handle(self.started, spec.id, self.pool)


def live_check(runs: list[Run], days: int, warmup_s: float) -> tuple[float, float, int]:
    """(pool hit rate, simulator hit rate, claims) over the last ``days`` whole days."""
    end = runs[-1].time // 86400 * 86400
    start = end - days * 86400
    profile = current_profile("/bench/project", distributions=[("numpy", "1")], executable="/py")
    with tempfile.TemporaryDirectory() as tmp:
        store = FarmStore.open(Path(tmp) / "farm.db")
        for i, run in enumerate(r for r in runs if r.time < start):
            store.record_claim(f"h{i}", profile.key, run.workers, 0, {}, run.time)
        clock = Clock(start)
        launcher = Launcher(clock, warmup_s)
        config = FarmConfig(
            forecast=True,
            default_max_warm=16,
            max_processes=4096,
            max_warming=256,
            warm_spare_cores=0,
            claim_timeout_s=1e9,
            release_grace_s=1e9,
        )
        pool = Pool(config, launcher, Path(tmp), clock=clock, idle=lambda: 64.0, cores=64)
        launcher.pool = pool
        pool.book = policy_book(store, lambda: pool.config)
        pool.register(profile)
        todo = [r for r in runs if start <= r.time < end]
        exits: list[tuple[float, str]] = []
        requested = granted = 0
        i = 0
        pool.reconcile()
        while i < len(todo):
            policy = pool.book.get(profile.key)
            wake = min(todo[i].time, policy.next_change(clock.now))
            if launcher.events:
                wake = min(wake, launcher.events[0][0])
            if exits:
                wake = min(wake, exits[0][0])
            clock.now = max(clock.now, wake)
            while launcher.events and launcher.events[0][0] <= clock.now:
                _, _, worker_id = heapq.heappop(launcher.events)
                pool.on_event(worker_id, {"event": "ready", "report": {"ok": True}})
            while exits and exits[0][0] <= clock.now:
                _, worker_id = heapq.heappop(exits)
                pool.on_exit(worker_id, 0)
            while i < len(todo) and todo[i].time <= clock.now:
                result = pool.claim(profile, todo[i].workers)
                requested += todo[i].workers
                granted += len(result.workers)
                for worker in result.workers:
                    heapq.heappush(exits, (clock.now + todo[i].seconds, worker.id))
                i += 1
            pool.reconcile()
        store.close()
    policy = ForecastPolicy(default_forecaster(), warmup_s)
    sim = simulate([r for r in runs if r.time < end], policy, warmup_s, window=start)
    return granted / max(requested, 1), sim.hit_rate, requested


def synthetic_trace(weeks: int, seed: int = 0) -> list[Run]:
    """Pushes of 1-3 runs of 2 workers, busy on weekday working hours (UTC), quiet else.

    It ends on a Thursday, so the live check's last days hold claims."""
    rng = np.random.default_rng(seed)
    start = 1_767_225_600.0  # a Monday, 00:00 UTC
    runs = []
    for hour in range(weeks * WEEK + 3 * 24):
        day, hod = divmod(hour % WEEK, 24)
        rate = 1.5 if day < 5 and 8 <= hod < 18 else 0.1
        for _ in range(int(rng.poisson(rate))):
            t = start + hour * 3600 + float(rng.uniform(0, 3600))
            for k in range(int(rng.integers(1, 4))):
                runs.append(Run(time=t + 20.0 * k, workers=2, seconds=300.0))
    return sorted(runs, key=lambda run: run.time)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traces", type=Path, default=DEFAULT_TRACES, help="folder of CSVs")
    parser.add_argument("--warmup-s", type=float, default=20.0, help="warm-up seconds (20)")
    parser.add_argument(
        "--dense",
        type=float,
        default=3.0,
        help="also a trace this many times as busy as the densest (0: none)",
    )
    parser.add_argument("--live-days", type=int, default=2, help="days of the live check")
    parser.add_argument("--quick", action="store_true", help="CI smoke: small and short")
    args = parser.parse_args()
    paths = sorted(args.traces.glob("*.csv"))
    if paths:
        traces = {p.stem: read_trace(p) for p in paths}
    elif args.quick:  # a smoke run needs no data: a seeded weekly-seasonal trace
        print(f"no *.csv trace in {args.traces}: a synthetic 8-week trace stands in")
        traces = {"synthetic": synthetic_trace(weeks=8)}
    else:
        sys.exit(f"no *.csv trace in {args.traces}; give a folder of traces with --traces DIR")
    policies = [*POLICIES, "forecast"]
    if args.quick:
        smallest = min(traces, key=lambda k: len(traces[k]))
        traces = {smallest: traces[smallest]}
        policies = ["oracle", "static:2", "histogram", "forecast"]
        args.dense, args.live_days = 0.0, 1
    if args.dense > 0:
        densest = max(traces, key=lambda k: len(traces[k]))
        traces[f"{densest}x{args.dense:g} (synthetic)"] = denser(traces[densest], args.dense)
    for name, runs in traces.items():
        table(name, runs, policies, args.warmup_s)
    name = max(traces, key=lambda k: len(traces[k]))
    print(f"\n== live check: the daemon's pool on the last {args.live_days} days of {name}")
    started = time.perf_counter()
    live, sim, claims = live_check(traces[name], args.live_days, args.warmup_s)
    print(
        f"pool hit rate {live:.4f}, simulator {sim:.4f} over {claims} claims: "
        f"{abs(live - sim) * 100:.1f} points apart ({time.perf_counter() - started:.0f}s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
