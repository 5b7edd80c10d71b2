"""The forecast policy: a pool plan per day from the demand forecast and the idle-time histogram.

Once a day (a warm-up before 00:00 UTC) it forecasts the next 48 h of hourly demand and
chooses its levels by replaying the last four weeks of claims, its own past forecasts
included (an objective over the whole horizon, not a per-hour quantile; see
``levels.py``):

- levels per forecast band: hours are grouped by forecast score (the mean of its
  quantiles), each group keeps its own number of warm workers from a warm-up before the
  hour, a higher forecast never fewer; quiet hours can keep a couple for a lone push
  while busy ones keep enough for bursts (a push of several commits asks for workers
  again before the replacements are warm);
- ``keep_s``: after a claim a keep-alive level stays ``keep_s`` seconds (chosen among
  the idle-time histogram's percentiles, as in Shahrad et al.): bursts between forecast
  hours are served.

The cheapest choice (idle worker-seconds) whose replay meets the hit-rate objective wins.
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
from farm_server.forecast.levels import Choice, choose
from farm_server.forecast.models import Forecast, Forecaster, HourOfWeek

__all__ = ["ForecastPolicy", "Plan", "choose"]

DAY_S = 86400.0


@dataclass(frozen=True)
class Plan:
    """Targets for the hours from ``start`` and the keep-alive rule, as chosen at ``made``."""

    made: float
    start: float
    levels: np.ndarray
    #: workers kept for keep_s seconds after a claim
    level: int
    keep_s: float
    expected_hit_rate: float
    forecast: Forecast | None = None

    def level_at(self, when: float) -> int:
        i = int((when - self.start) // HOUR)
        return int(self.levels[i]) if 0 <= i < len(self.levels) else 0


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
            self.plan = Plan(now, origin, np.zeros(0, dtype=int), 0, 0.0, 1.0)
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
            choice = Choice.none()
        self.plan = Plan(
            now,
            origin,
            choice.levels_for(scores),
            choice.keep_level,
            choice.keep_s,
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
