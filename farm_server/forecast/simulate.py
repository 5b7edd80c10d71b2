"""Replay a demand trace against a pool policy: the same policy objects the daemon runs.

The model: every run needs ``workers`` warm workers at its ``time`` and holds them for
``seconds``; a claimed worker serves that run and exits (as in the farm), and the pool
starts replacements at once up to the policy's target of unclaimed workers. A started
worker is warm ``warmup_s`` later; a claim that finds no warm worker is a miss (the run
starts a cold worker and waits the warm-up). When the target falls, the newest workers
end first (the ones still warming). Idle worker-seconds count warm or warming,
unclaimed workers. Policies learn online from every arrival before ``now`` (history
rows included); scores cover the trace's last 28 days.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass

import numpy as np

from farm_server.forecast.policy import PoolPolicy
from farm_server.forecast.trace import Run, eval_start

__all__ = ["SimResult", "simulate"]

#: the replay starts this long before the scored window (earlier rows only teach)
LEAD_DAYS = 28


@dataclass(frozen=True)
class SimResult:
    policy: str
    runs: int
    claims: int
    hits: int
    hit_rate: float
    idle_worker_s: float
    wait_p95_s: float

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def simulate(
    runs: list[Run], policy: PoolPolicy, warmup_s: float = 20.0, *, window: float | None = None
) -> SimResult:
    """Replay ``runs`` (sorted) against ``policy``; score from ``window`` (default: the
    last 28 days)."""
    window = eval_start(runs) if window is None else window
    end = runs[-1].time
    start = max(runs[0].time, window - LEAD_DAYS * 86400.0)
    i = 0
    while i < len(runs) and runs[i].time < start:
        policy.observe(runs[i].time, runs[i].workers)
        i += 1
    t = start
    warm = 0
    warming: deque[float] = deque()  # ready times, ascending (every start adds the latest)
    idle = 0.0
    hits = claims = scored_runs = 0
    waits: list[float] = []

    def reconcile() -> None:
        nonlocal warm
        want = max(0, policy.target(t))
        have = warm + len(warming)
        for _ in range(want - have):
            warming.append(t + warmup_s)
        for _ in range(have - want):
            if warming:
                warming.pop()
            else:
                warm -= 1

    reconcile()
    while i < len(runs):
        change = policy.next_change(t)
        if change <= t:
            change = math.inf
        nxt = min(runs[i].time, warming[0] if warming else math.inf, change)
        lo, hi = max(t, window), min(nxt, end)
        if hi > lo:
            idle += (warm + len(warming)) * (hi - lo)
        t = nxt
        while warming and warming[0] <= t:
            warming.popleft()
            warm += 1
        while i < len(runs) and runs[i].time <= t:
            run = runs[i]
            got = min(warm, run.workers)
            warm -= got
            if run.time >= window:
                scored_runs += 1
                claims += run.workers
                hits += got
                waits += [0.0] * got + [warmup_s] * (run.workers - got)
            policy.observe(run.time, run.workers)
            i += 1
        reconcile()
    return SimResult(
        policy=policy.name,
        runs=scored_runs,
        claims=claims,
        hits=hits,
        hit_rate=round(hits / claims, 4) if claims else 1.0,
        idle_worker_s=round(idle, 1),
        wait_p95_s=float(np.percentile(waits, 95)) if waits else 0.0,
    )
