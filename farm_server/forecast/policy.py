"""Pool policies: how many unclaimed workers a profile wants warm, hour by hour.

A policy learns from the claims it is shown (``observe``, past only) and answers
``target(now)``; ``next_change(now)`` says when its answer may change with no new claim,
so the replay jumps from event to event and the daemon's supervisor wakes in time.
The baselines here are the yardsticks of the forecast policy (``planner.py``).
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

__all__ = ["Histogram", "KeepAlive", "Oracle", "PoolPolicy", "Static"]


class PoolPolicy(Protocol):
    @property
    def name(self) -> str: ...

    #: measured seconds from a worker's start to warm (the daemon keeps it current)
    warmup_s: float

    def observe(self, when: float, workers: int) -> None:
        """A claim of ``workers`` arrived at ``when`` (calls come in time order)."""

    def target(self, now: float) -> int:
        """Unclaimed (warm or warming) workers wanted at ``now``."""

    def next_change(self, now: float) -> float:
        """The next time after ``now`` the target may change without a claim (inf: never)."""


@dataclass
class Static:
    """``static:N``: always N (today's ``min_warm``)."""

    workers: int
    warmup_s: float = 20.0

    @property
    def name(self) -> str:
        return f"static:{self.workers}"

    def observe(self, when: float, workers: int) -> None:
        pass

    def target(self, now: float) -> int:
        return self.workers

    def next_change(self, now: float) -> float:
        return math.inf


@dataclass
class KeepAlive:
    """``keepalive:S``: after a claim, keep that many workers warm for S seconds."""

    seconds: float
    warmup_s: float = 20.0
    _recent: deque[tuple[float, int]] = field(default_factory=deque)

    @property
    def name(self) -> str:
        return f"keepalive:{self.seconds:g}"

    def observe(self, when: float, workers: int) -> None:
        self._recent.append((when, workers))

    def _trim(self, now: float) -> None:
        while self._recent and self._recent[0][0] + self.seconds <= now:
            self._recent.popleft()

    def target(self, now: float) -> int:
        self._trim(now)
        return max((w for _, w in self._recent), default=0)

    def next_change(self, now: float) -> float:
        self._trim(now)
        return self._recent[0][0] + self.seconds if self._recent else math.inf


@dataclass
class Histogram:
    """Shahrad et al.'s hybrid policy: an idle-time (inter-arrival) histogram per profile.

    After a claim the pool is empty until the 5th percentile of idle times minus 10%
    (pre-warm), then keeps the last claim's workers until the 99th percentile plus 10%
    (keep-alive). Idle times past the histogram's range (4 h) or too few samples make
    it unrepresentative: then it keeps the workers for the whole range.
    """

    warmup_s: float = 20.0
    range_s: float = 4 * 3600.0
    min_samples: int = 10
    name: str = "histogram"
    _gaps: list[float] = field(default_factory=list)
    _last: float | None = None
    _workers: int = 0
    _window: tuple[float, float] = (0.0, 0.0)

    def observe(self, when: float, workers: int) -> None:
        if self._last is not None:
            self._gaps.append(when - self._last)
        self._last, self._workers = when, workers
        gaps = np.asarray(self._gaps[-1000:])
        inside = gaps[gaps <= self.range_s]
        if len(inside) < self.min_samples or len(inside) < 0.5 * len(gaps):
            self._window = (when, when + self.range_s)
            return
        prewarm = max(0.0, float(np.percentile(inside, 5)) * 0.9 - self.warmup_s)
        keep = float(np.percentile(inside, 99)) * 1.1
        self._window = (when + prewarm, when + max(keep, prewarm))

    def target(self, now: float) -> int:
        lo, hi = self._window
        return self._workers if lo <= now < hi else 0

    def next_change(self, now: float) -> float:
        return min((x for x in self._window if x > now), default=math.inf)


@dataclass
class Oracle:
    """Knows the future: starts exactly the workers a claim needs, one warm-up ahead."""

    times: list[float]
    workers: list[int]
    warmup_s: float = 20.0
    name: str = "oracle"

    def observe(self, when: float, workers: int) -> None:
        pass

    def target(self, now: float) -> int:
        lo = bisect.bisect_right(self.times, now)
        hi = bisect.bisect_right(self.times, now + self.warmup_s)
        return sum(self.workers[lo:hi])

    def next_change(self, now: float) -> float:
        enter = bisect.bisect_right(self.times, now + self.warmup_s)
        leave = bisect.bisect_right(self.times, now)
        options = []
        if enter < len(self.times):
            options.append(self.times[enter] - self.warmup_s)
        if leave < len(self.times):
            options.append(self.times[leave])
        return min(options, default=math.inf)
