"""The forecast policy: a pool plan per day from the demand forecast and the idle-time histogram.

Once a day (a warm-up before 00:00 UTC) it forecasts the next 48 h of hourly demand and
chooses three numbers by replaying the last four weeks of claims, its own past
forecasts included (an objective over the whole horizon, not a per-hour quantile):

- ``level``: workers kept warm in a "busy" hour and after an arrival: enough for the
  bursts seen (a push of several commits asks for workers again before the
  replacements are warm);
- ``threshold``: an hour is busy when its forecast (the mean of its quantiles) reaches
  it; busy hours are warmed a measured warm-up ahead of the hour;
- ``keep_s``: after a claim the level stays ``keep_s`` seconds (keep-alive, chosen among
  the idle-time histogram's percentiles, as in Shahrad et al.): bursts between forecast
  hours are served.

The cheapest triple (idle worker-seconds) whose replay meets the hit-rate objective wins.
When the forecast lowers the level at an hour's start, the pool never drops below the
demand observed in the last hour (AWS predictive scaling never scales in on a forecast
alone). Everything is capped by ``cap``.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from farm_server.forecast.demand import HOUR, HourlySeries, floor_hour, hourly_demand
from farm_server.forecast.models import Forecast, Forecaster, HourOfWeek

__all__ = ["ForecastPolicy", "Plan", "choose"]

DAY_S = 86400.0
#: keep-alive candidates: percentiles of the idle times (gaps between claims)
KEEP_PERCENTILES = (25, 50, 60, 70, 80, 85, 90, 95, 97.5, 99)
#: the idle-time histogram's range (longer gaps are left to the forecast)
KEEP_RANGE_S = 4 * 3600.0


@dataclass(frozen=True)
class Plan:
    """Targets for the hours from ``start`` and the keep-alive rule, as chosen at ``made``."""

    made: float
    start: float
    levels: np.ndarray
    #: workers kept for keep_s seconds after a claim
    level: int
    keep_s: float
    threshold: float
    expected_hit_rate: float
    forecast: Forecast | None = None

    def level_at(self, when: float) -> int:
        i = int((when - self.start) // HOUR)
        return int(self.levels[i]) if 0 <= i < len(self.levels) else 0


@dataclass(frozen=True)
class Choice:
    #: workers kept in busy hours, and after a claim for keep_s seconds
    busy_level: int
    keep_level: int
    threshold: float
    keep_s: float
    hit_rate: float
    idle_s: float


def realized(
    times: np.ndarray,
    workers: np.ndarray,
    plans: list[Plan],
    since: float,
    until: float,
    warmup_s: float,
) -> float | None:
    """Hit rate the recorded ``plans`` (each in force until the next one starts) had on
    the claims in [since, until), reckoned as :func:`choose` does: claims a warm-up apart
    share the warm workers."""
    if not plans or not len(times):
        return None
    cum = np.concatenate([[0], np.cumsum(workers)])
    hits = total = 0.0
    ends = [p.start for p in plans[1:]] + [until]
    for plan, end in zip(plans, ends, strict=True):
        lo_t, hi_t = max(since, plan.start), min(end, until)
        for i in np.nonzero((times >= lo_t) & (times < hi_t))[0]:
            a = times[i]
            lo = int(np.searchsorted(times, a - warmup_s, side="right"))
            level = plan.level_at(a + warmup_s)
            if lo > 0 and a - times[lo - 1] <= plan.keep_s:
                level = max(level, plan.level)
            hits += min(max(level - (cum[i] - cum[lo]), 0), workers[i])
            total += workers[i]
    return hits / total if total else None


def choose(
    times: np.ndarray,
    workers: np.ndarray,
    scores: np.ndarray,
    scores_start: float,
    *,
    warmup_s: float,
    objective: float,
    cap: int,
) -> Choice:
    """The cheapest (level, threshold, keep_s) whose replay of the past meets ``objective``.

    ``times``/``workers``: the claims; ``scores[i]``: the forecast made for hour
    ``scores_start + i*3600``. Claims before ``scores_start`` only provide context.
    """
    n_hours = len(scores)
    end = scores_start + n_hours * HOUR
    inside = (times >= scores_start) & (times < end)
    if not inside.any() or cap <= 0:
        return Choice(0, 0, math.inf, 0.0, 1.0, 0.0)
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

    gaps = np.diff(times[times >= scores_start - DAY_S])
    gaps = gaps[(gaps > 0) & (gaps <= KEEP_RANGE_S)]
    keeps = [0.0]
    if len(gaps):
        keeps += sorted({float(np.percentile(gaps, p)) for p in KEEP_PERCENTILES})
    thresholds = sorted({*np.quantile(scores, np.linspace(0, 1, 21)).tolist(), math.inf})

    # seconds of keep-alive per hour: segments [claim, min(claim + keep, next claim)]
    t_in = times[(times >= scores_start) & (times < end)]
    nxt = np.append(t_in[1:], end)
    minute_edges = n_hours * 60
    busy_level = levels[:, None]
    keep_level = levels[None, :]
    both = np.maximum(busy_level, keep_level)
    best: Choice | None = None
    fallback: Choice | None = None
    for keep in keeps:
        covered = np.zeros(n_hours)
        if keep > 0:
            seg_end = np.minimum(t_in + keep, nxt)
            diff = np.zeros(minute_edges + 1)
            a = ((t_in - scores_start) // 60).astype(int)
            b = np.ceil((seg_end - scores_start) / 60).astype(int).clip(0, minute_edges)
            np.add.at(diff, a, 1)
            np.add.at(diff, b, -1)
            on = np.cumsum(diff[:-1]) > 0
            covered = on.reshape(n_hours, 60).sum(axis=1) * 60.0
        floor_warm = since <= keep
        for threshold in thresholds:
            busy_hours = scores >= threshold
            busy = busy_hours[hour_of]
            # hits per (busy level, keep-alive level): claims grouped by what covers them
            g11 = hits_by_level @ (busy & floor_warm)
            g10 = hits_by_level @ (busy & ~floor_warm)
            g01 = hits_by_level @ (~busy & floor_warm)
            hits = g11[both] + g10[busy_level] + g01[keep_level]
            cov_busy = float(covered[busy_hours].sum())
            cov_quiet = float(covered[~busy_hours].sum())
            idle = (
                busy_level * HOUR * float(busy_hours.sum())
                + np.maximum(0, keep_level - busy_level) * cov_busy
                + keep_level * cov_quiet
            )
            rate = hits / total
            ok = rate >= objective
            if ok.any():
                masked = np.where(ok, idle, np.inf)
                i, j = np.unravel_index(int(np.argmin(masked)), masked.shape)
                if best is None or masked[i, j] < best.idle_s:
                    best = Choice(
                        int(i), int(j), threshold, keep, float(rate[i, j]), float(idle[i, j])
                    )
            i, j = np.unravel_index(int(np.argmax(rate - idle * 1e-12)), rate.shape)
            if fallback is None or (rate[i, j], -idle[i, j]) > (
                fallback.hit_rate,
                -fallback.idle_s,
            ):
                fallback = Choice(
                    int(i), int(j), threshold, keep, float(rate[i, j]), float(idle[i, j])
                )
    assert fallback is not None
    return best if best is not None else fallback


@dataclass
class ForecastPolicy:
    """``forecast``: the daily plan above, learned online from the claims observed."""

    forecaster: Forecaster
    warmup_s: float = 20.0
    objective: float = 0.95
    #: the replay of the past is optimistic about the future by about this much
    margin: float = 0.01
    #: the most added to the objective when the last plans fell short of it
    max_correction: float = 0.03
    #: days of the past plans' record checked against what came
    check_days: int = 14
    cap: int = 16
    horizon_h: int = 48
    lookback_days: int = 28
    name: str = "forecast"
    plan: Plan | None = None
    _times: list[float] = field(default_factory=list)
    _workers: list[int] = field(default_factory=list)
    _recent: deque[tuple[float, int]] = field(default_factory=deque)
    #: the score each past plan gave its first day's hours (absolute hour -> score)
    _scores: dict[int, float] = field(default_factory=dict)
    _next_plan: float = -math.inf
    #: the plans made, to check them against the claims that came
    _plans: list[Plan] = field(default_factory=list)

    def observe(self, when: float, workers: int) -> None:
        self._times.append(when)
        self._workers.append(workers)
        self._recent.append((when, workers))

    # --- planning ------------------------------------------------------------------------

    def _series(self, before: float) -> HourlySeries | None:
        n = bisect.bisect_left(self._times, before)
        if n == 0:
            return None
        pairs = list(zip(self._times[:n], self._workers[:n], strict=True))
        return hourly_demand(pairs, start=self._times[0], end=before - 1)

    def _past_scores(self, series: HourlySeries, first_hour: int, last_hour: int) -> np.ndarray:
        """Scores of the past hours: the plans' own, else an hour-of-week forecast."""
        out = np.zeros(last_hour - first_hour)
        proxy = HourOfWeek()
        for i, hour in enumerate(range(first_hour, last_hour)):
            if hour in self._scores:
                out[i] = self._scores[hour]
            elif (hour * HOUR) % DAY_S == 0 or i == 0:
                past = series.before(hour * HOUR)
                day = proxy.forecast(past, 24) if len(past) else None
                for j in range(24):
                    if i + j < len(out) and day is not None:
                        out[i + j] = float(np.mean([v[j] for v in day.quantiles.values()]))
            # hours between are filled by the day's forecast above
        return out

    def _correction(self, origin: float, times: np.ndarray, workers: np.ndarray) -> float:
        """How far the recent plans fell short of the objective on the claims that came
        (0 when they met it): added to the next plan's objective, up to max_correction."""
        since = origin - self.check_days * DAY_S
        self._plans = [p for p in self._plans if p.start + 2 * DAY_S > since]
        rate = realized(times, workers, self._plans, since, origin, self.warmup_s)
        if rate is None:
            return 0.0
        return min(self.max_correction, max(0.0, self.objective - rate))

    def replan(self, now: float) -> Plan:
        origin = floor_hour(now)
        series = self._series(origin)
        if series is None or len(series) == 0:
            self.plan = Plan(now, origin, np.zeros(0, dtype=int), 0, 0.0, math.inf, 1.0)
            return self.plan
        fc = self.forecaster.forecast(series, self.horizon_h + 1)
        scores = np.mean(np.vstack(list(fc.quantiles.values())), axis=0)
        first = int(origin // HOUR)
        for j in range(min(25, len(scores))):
            self._scores[first + j] = float(scores[j])
        back = int(max(series.start, origin - self.lookback_days * DAY_S) // HOUR)
        past = self._past_scores(series, back, first)
        times = np.asarray(self._times[: bisect.bisect_left(self._times, origin)])
        workers = np.asarray(self._workers[: len(times)])
        if len(past):
            choice = choose(
                times,
                workers,
                past,
                back * HOUR,
                warmup_s=self.warmup_s,
                objective=min(
                    1.0, self.objective + self.margin + self._correction(origin, times, workers)
                ),
                cap=self.cap,
            )
        else:
            choice = Choice(0, 0, math.inf, 0.0, 1.0, 0.0)
        levels = np.where(scores >= choice.threshold, choice.busy_level, 0).astype(int)
        self.plan = Plan(
            now,
            origin,
            levels,
            choice.keep_level,
            choice.keep_s,
            choice.threshold,
            choice.hit_rate,
            fc,
        )
        self._plans.append(self.plan)
        return self.plan

    # --- the pool's questions ------------------------------------------------------------

    def _refresh(self, now: float) -> Plan:
        if self.plan is None or now >= self._next_plan:
            self.replan(now)
            # next: a warm-up (and a minute for the fit) before the next 00:00 UTC
            lead = self.warmup_s + 60.0
            day = (now + lead) // DAY_S * DAY_S + DAY_S
            self._next_plan = day - lead
        assert self.plan is not None
        return self.plan

    def _recent_demand(self, now: float) -> int:
        while self._recent and self._recent[0][0] <= now - HOUR:
            self._recent.popleft()
        return sum(w for _, w in self._recent)

    def target(self, now: float) -> int:
        plan = self._refresh(now)
        ahead = now + self.warmup_s
        level = plan.level_at(ahead)
        floor = plan.level if self._times and now < self._times[-1] + plan.keep_s else 0
        before = plan.level_at(ahead - HOUR)
        hold = min(before, self._recent_demand(now)) if before > level else 0
        return min(self.cap, max(level, floor, hold))

    def next_change(self, now: float) -> float:
        plan = self._refresh(now)
        options = [self._next_plan, (now + self.warmup_s) // HOUR * HOUR + HOUR - self.warmup_s]
        if self._times:
            options.append(self._times[-1] + plan.keep_s)
        if self._recent:
            options.append(self._recent[0][0] + HOUR)
        return min((t for t in options if t > now), default=math.inf)
