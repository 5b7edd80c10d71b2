"""How many workers the forecast policy keeps: the cheapest levels that met the objective.

The past four weeks of claims are replayed against the policy's own past forecasts.
Hours are grouped by their forecast score into bands (quantiles of the scores), and
each band gets a level of warm workers, never lower than a band of lower scores; after
any claim a keep-alive level holds for ``keep_s`` seconds (``keep_s`` one of the
percentiles of the idle times between claims, the histogram of Shahrad et al.). The
objective is a hit rate over the whole horizon, not a quantile per hour: the levels are
raised greedily where they buy the most hits per idle worker-second, until the replay
meets it. Levels grow in whole workers and the hits a level buys shrink as it grows
(claims need a bounded number of workers), so the greedy choice is close to the
cheapest; every keep-alive candidate is tried and the cheapest result wins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from farm_server.forecast.demand import HOUR

__all__ = ["BANDS", "Choice", "choose"]

DAY_S = 86400.0
#: keep-alive candidates: percentiles of the idle times (gaps between claims)
KEEP_PERCENTILES = (25, 50, 60, 70, 80, 85, 90, 95, 97.5, 99)
#: the idle-time histogram's range (longer gaps are left to the forecast)
KEEP_RANGE_S = 4 * 3600.0
#: forecast bands: hours are grouped by score quantiles into at most this many groups
BANDS = 6


@dataclass(frozen=True)
class Choice:
    """Levels per forecast band (band ``i + 1`` holds the scores above ``edges[i]``) and
    the keep-alive rule, with the hit rate and idle worker-seconds of their replay."""

    edges: tuple[float, ...]
    band_levels: tuple[int, ...]
    #: workers kept after a claim for keep_s seconds
    keep_level: int
    keep_s: float
    hit_rate: float
    idle_s: float

    def levels_for(self, scores: np.ndarray) -> np.ndarray:
        """The level of each hour of ``scores`` (forecast scores, as in the replay)."""
        bands = np.searchsorted(np.asarray(self.edges), scores, side="left")
        return np.asarray(self.band_levels, dtype=int)[bands]

    @property
    def busy_level(self) -> int:
        """The level of the busiest band."""
        return self.band_levels[-1]

    @classmethod
    def none(cls) -> Choice:
        return cls((), (0,), 0, 0.0, 1.0, 0.0)


def _keep_coverage(
    t_in: np.ndarray, end: float, keep: float, start: float, n_hours: int
) -> np.ndarray:
    """Seconds per hour under a keep-alive of ``keep`` after each claim (to the minute)."""
    if keep <= 0 or not len(t_in):
        return np.zeros(n_hours)
    nxt = np.append(t_in[1:], end)
    seg_end = np.minimum(t_in + keep, nxt)
    minute_edges = n_hours * 60
    diff = np.zeros(minute_edges + 1)
    a = ((t_in - start) // 60).astype(int)
    b = np.ceil((seg_end - start) / 60).astype(int).clip(0, minute_edges)
    np.add.at(diff, a, 1)
    np.add.at(diff, b, -1)
    on = np.cumsum(diff[:-1]) > 0
    return on.reshape(n_hours, 60).sum(axis=1) * 60.0


def _greedy(gain: np.ndarray, cost: np.ndarray, need: float) -> tuple[np.ndarray, float, float]:
    """Levels per band (non-decreasing with the band) buying ``need`` hits cheaply.

    ``gain[b, L]``/``cost[b, L]``: hits and idle of band ``b`` at level ``L``. Each step
    takes the raise (a band to a higher level, the bands above at least to it) with the
    most hits per idle second; it stops when the hits reach ``need`` or nothing helps.
    """
    n_bands, n_levels = gain.shape
    level = np.zeros(n_bands, dtype=int)
    rows = np.arange(n_bands)
    targets = np.arange(n_levels)
    while True:
        hits = float(gain[rows, level].sum())
        if hits >= need:
            break
        raised = np.maximum(level[:, None], targets[None, :])  # band b raised to L
        d_gain = gain[rows[:, None], raised] - gain[rows, level][:, None]
        d_cost = cost[rows[:, None], raised] - cost[rows, level][:, None]
        # raising band b to L also lifts every band above it to L at the least
        d_gain = np.cumsum(d_gain[::-1], axis=0)[::-1]
        d_cost = np.cumsum(d_cost[::-1], axis=0)[::-1]
        useful = d_gain > 1e-9
        if not useful.any():
            break
        ratio = np.where(useful, d_gain / np.maximum(d_cost, 1e-9), -np.inf)
        b, top = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
        level[b:] = np.maximum(level[b:], top)
    return level, float(gain[rows, level].sum()), float(cost[rows, level].sum())


def choose(
    times: np.ndarray,
    workers: np.ndarray,
    scores: np.ndarray,
    scores_start: float,
    *,
    warmup_s: float,
    objective: float,
    cap: int,
    bands: int = BANDS,
) -> Choice:
    """The cheapest band levels and keep-alive whose replay of the past meets ``objective``.

    ``times``/``workers``: the claims; ``scores[i]``: the forecast made for hour
    ``scores_start + i*3600``. Claims before ``scores_start`` only provide context. When
    no choice within ``cap`` meets the objective, the one with the best hit rate.
    """
    n_hours = len(scores)
    end = scores_start + n_hours * HOUR
    inside = (times >= scores_start) & (times < end)
    if not inside.any() or cap <= 0:
        return Choice.none()
    cum = np.concatenate([[0], np.cumsum(workers)])
    idx = np.nonzero(inside)[0]
    ta, wa = times[idx], workers[idx]
    # claims in the warm-up before a claim took workers whose replacements are not warm yet
    lo = np.searchsorted(times, ta - warmup_s, side="right")
    prior = cum[idx] - cum[lo]
    # the keep-alive is warm at a claim if some claim at least a warm-up earlier lies within it
    before = lo - 1
    since = np.where(before >= 0, ta - times[np.maximum(before, 0)], np.inf)
    hour_of = ((ta + warmup_s - scores_start) // HOUR).astype(int).clip(0, n_hours - 1)
    total = float(wa.sum())
    # levels past the largest need add no hits, only idle
    levels = np.arange(0, min(cap, int((prior + wa).max())) + 1)
    hits_by_level = np.clip(levels[:, None] - prior[None, :], 0, wa[None, :]).astype(float)

    distinct = np.unique(scores)
    if len(distinct) <= bands:  # few distinct scores (a step pattern): one band each
        edges = distinct[:-1]
    else:
        edges = np.unique(np.quantile(scores, np.linspace(0, 1, bands + 1)[1:-1]))
    band_of_hour = np.searchsorted(edges, scores, side="left")
    n_bands = len(edges) + 1
    hours_in = np.bincount(band_of_hour, minlength=n_bands).astype(float)
    onehot = np.zeros((len(ta), n_bands))
    onehot[np.arange(len(ta)), band_of_hour[hour_of]] = 1.0

    gaps = np.diff(times[times >= scores_start - DAY_S])
    gaps = gaps[(gaps > 0) & (gaps <= KEEP_RANGE_S)]
    keeps = [0.0]
    if len(gaps):
        keeps += sorted({float(np.percentile(gaps, p)) for p in KEEP_PERCENTILES})
    t_in = times[inside]
    need = objective * total
    best: Choice | None = None
    fallback: Choice | None = None
    for keep in keeps:
        covered = _keep_coverage(t_in, end, keep, scores_start, n_hours)
        covered_in = np.bincount(band_of_hour, weights=covered, minlength=n_bands)
        floor_warm = since <= keep
        for k in levels if keep > 0 else levels[:1]:
            effective = hits_by_level[np.maximum(levels, k)]
            hits = np.where(floor_warm[None, :], effective, hits_by_level)
            gain = (hits @ onehot).T  # [band, level]
            cost = (
                levels[None, :] * HOUR * hours_in[:, None]
                + np.maximum(0, k - levels)[None, :] * covered_in[:, None]
            )
            band_levels, got, idle = _greedy(gain, cost, need)
            choice = Choice(
                tuple(float(e) for e in edges),
                tuple(int(v) for v in band_levels),
                int(k),
                keep,
                got / total,
                idle,
            )
            if got >= need - 1e-9:
                if best is None or idle < best.idle_s:
                    best = choice
            elif fallback is None or (got, -idle) > (fallback.hit_rate * total, -fallback.idle_s):
                fallback = choice
    if best is not None:
        return best
    assert fallback is not None
    if not math.isfinite(fallback.idle_s):
        return Choice.none()
    return fallback
