"""How long each test will take (its ETC), and how much is left of a test already running.

The per-test estimate is a **recency-weighted median** of the newest :data:`WINDOW` valid
samples, the newest weighing most (:data:`WEIGHTS`, about ``16 * 0.8**age``).

Why a weighted median and not a mean or an exponential average: test durations are skewed
and spiky (a cold cache, a busy CI box, a retried network call), and an average lets one
10x run shift the estimate by ~1.5x. A median ignores any single spike completely: a
sample is the estimate only if samples at least as large and at least as small both carry
half the weight, and no single weight reaches half of any total (16 < 39 / 2), so with
three or more samples the estimate always lies between the second smallest and the
second largest of them. The recency weights make it follow a *sustained* change: the
three newest weights outweigh the other five (16 + 13 + 10 = 39 > 65 / 2), so after
three runs at a new level the estimate is at the new level, while one or two slow runs
against a full window (29 < 65 / 2) are still read as noise. Samples older than the
window are not read at all, which also keeps the work per test constant. Weights from
the fourth newest on are even, so every total of three or more weights is odd and the
median never falls on a tie between two samples. With one or two samples there is no
majority to vote with, so the estimate is their plain median (the mean of two).

The ``spread`` is the MAD of the window around the estimate, times 1.4826 so it reads
as a standard deviation for normal noise; for a fallback it is the same scale taken over
the estimates the fallback is the median of.

Tests without history fall back, in this order, to the median estimate of the other
parametrizations of the same function ("sibling"), of the known tests of the same file
("module"), of every known test ("suite"), and finally to :data:`DEFAULT_ETC_S`.
Everything but unseen node ids is computed in ``__init__``, and answers are memoised,
so :meth:`Estimator.estimate` is a dictionary lookup for the thousands of calls per run.

Negative, NaN, infinite and non-numeric durations (imported files carry them) are dropped.

The median is the right answer to "how long will this test take" (what ordering and
scheduling ask), but the wrong one for a sum: test durations are skewed to the right,
so a sum of medians falls short of the sum of what the tests take, more so the more
samples each window holds (on pygments, 15-26% low by the fourth run).
:meth:`Estimator.expected` is the recency-weighted *mean* of the same window, what a
predicted total adds up.
"""

from __future__ import annotations

import functools
import math
import operator
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "DEFAULT_ETC_S",
    "MIN_ETC_S",
    "MIN_REMAINING_S",
    "OVERRUN_TAIL_FACTOR",
    "WEIGHTS",
    "WINDOW",
    "Estimate",
    "Estimator",
    "function_key",
    "module_key",
]

#: The ETC of a test when no test at all has history. It is roughly what a small pytest
#: unit test costs once setup and teardown are counted; it only matters before the first
#: recorded run (afterwards the suite median takes over), where it sets the scale of the
#: first forecast. Erring on the high side keeps a brand-new suite from looking free and
#: packed onto one worker.
DEFAULT_ETC_S = 0.05

#: Newest first. About 16 * 0.8**age; see the module docstring for why these numbers.
WEIGHTS: tuple[int, ...] = (16, 13, 10, 8, 6, 6, 4, 2)
WINDOW = len(WEIGHTS)

#: No estimate is below this: a recorded 0.0 (clock resolution) must not mean "free".
MIN_ETC_S = 1e-6
#: A running test is never expected to end sooner than this.
MIN_REMAINING_S = 1e-3
#: Past its estimate a test is in its tail; a Pareto tail of index 3 expects it to run
#: on for half the time it has already taken (E[T - t | T > t] = t / (3 - 1)).
OVERRUN_TAIL_FACTOR = 0.5

_MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class Estimate:
    """The expected duration of one test item (setup + call + teardown) and its basis."""

    seconds: float
    #: "history" | "sibling" | "module" | "suite" | "default"
    source: str
    #: how many history samples (at most WINDOW) the estimate was computed from; 0 for fallbacks
    samples: int
    #: robust scale in seconds (MAD-based); 0.0 if unknown
    spread: float


def module_key(nodeid: str) -> str:
    """The file part of a node id: everything before the first ``::``."""
    return nodeid.partition("::")[0]


def function_key(nodeid: str) -> str | None:
    """The node id without its parametrization, or None for an id with no ``::`` at all.

    The parameter part starts at the first ``[`` after the first ``::``: the path may
    contain ``[`` but not ``::``, class and function names contain neither, and the
    parameter ids may contain anything (``::``, ``[``, ``]``), so this is the only
    ``[`` that can be trusted.
    """
    sep = nodeid.find("::")
    if sep < 0:
        return None
    bracket = nodeid.find("[", sep + 2)
    return nodeid if bracket < 0 else nodeid[:bracket]


def _valid_window(durations: Sequence[float]) -> list[float]:
    """The newest WINDOW usable samples, newest first."""
    tail = durations[-WINDOW:]
    if all(type(v) is float and 0.0 <= v < math.inf for v in tail):
        return list(reversed(tail))  # the common case: the history's own floats
    window: list[float] = []
    for raw in reversed(durations):
        try:
            value = float(raw)
        except (TypeError, ValueError):
            continue
        if math.isfinite(value) and value >= 0.0:
            window.append(value)
            if len(window) == WINDOW:
                break
    return window


def _median(values: Sequence[float]) -> float:
    """statistics.median without its generality (this runs once per test per run)."""
    ordered = sorted(values)
    half = len(ordered) // 2
    return ordered[half] if len(ordered) % 2 else (ordered[half - 1] + ordered[half]) / 2


def _weighted_median(newest_first: list[float]) -> float:
    n = len(newest_first)
    if n <= 2:
        return _median(newest_first)
    pairs = sorted(zip(newest_first, WEIGHTS, strict=False))
    total = sum(WEIGHTS[:n])
    cumulative = 0
    for value, weight in pairs:
        cumulative += weight
        if 2 * cumulative > total:  # never equal: total is odd for n >= 3
            return value
    return pairs[-1][0]  # pragma: no cover - the loop always returns (cumulative ends at total)


def _spread(values: Sequence[float], centre: float) -> float:
    if len(values) < 2:
        return 0.0
    return _MAD_TO_SIGMA * _median([abs(v - centre) for v in values])


def _pooled(estimates: list[float], source: str) -> Estimate:
    centre = statistics.median(estimates)
    return Estimate(max(centre, MIN_ETC_S), source, 0, _spread(estimates, centre))


class Estimator:
    """Estimates from a fixed history: nodeid -> durations in seconds, oldest first."""

    def __init__(
        self, history: Mapping[str, Sequence[float]], *, default: float = DEFAULT_ETC_S
    ) -> None:
        if not (isinstance(default, int | float) and math.isfinite(default) and default > 0):
            msg = f"default must be a finite number of seconds > 0, got {default!r}"
            raise ValueError(msg)
        self._cache: dict[str, Estimate] = {}
        #: nodeid -> its weighted median: the samples behind the fallbacks, pooled by
        #: function and module only when a fallback is first needed (most runs need few
        #: or none; a float dict costs the garbage collector nothing, 5,000 lists do)
        self._seconds: dict[str, float] = {}
        #: nodeid -> the recency-weighted mean of its window (see :meth:`expected`)
        self._mean: dict[str, float] = {}
        self._pooled: dict[tuple[str, str], Estimate] = {}
        for nodeid, durations in history.items():
            window = _valid_window(durations)
            if not window:
                continue
            seconds = self._seconds[nodeid] = _weighted_median(window)
            weights = WEIGHTS[: len(window)]
            self._mean[nodeid] = math.fsum(map(operator.mul, window, weights)) / sum(weights)
            self._cache[nodeid] = Estimate(
                max(seconds, MIN_ETC_S), "history", len(window), _spread(window, seconds)
            )
        self._known = len(self._cache)
        self._default = float(default)

    @property
    def known_tests(self) -> int:
        """How many tests have at least one usable sample."""
        return self._known

    def estimate(self, nodeid: str) -> Estimate:
        """The estimate for ``nodeid``: its own history, else the first fallback that applies."""
        try:
            return self._cache[nodeid]
        except KeyError:
            pass
        by_function, by_module = self._groups
        function = function_key(nodeid)
        if function is not None and function in by_function:
            found = self._pool("sibling", function, by_function[function])
        elif (module := module_key(nodeid)) in by_module:
            found = self._pool("module", module, by_module[module])
        elif self._known:
            found = self._pool("suite", "", [e.seconds for e in self._own()])
        else:
            found = Estimate(self._default, "default", 0, 0.0)
        self._cache[nodeid] = found
        return found

    @functools.cached_property
    def _groups(self) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
        """The known tests' medians pooled by function and by module."""
        by_function: dict[str, list[float]] = {}
        by_module: dict[str, list[float]] = {}
        for nodeid, seconds in self._seconds.items():
            function = function_key(nodeid)
            if function is not None:
                by_function.setdefault(function, []).append(seconds)
            by_module.setdefault(module_key(nodeid), []).append(seconds)
        return by_function, by_module

    def _own(self) -> list[Estimate]:
        return [e for e in self._cache.values() if e.source == "history"]

    def _pool(self, source: str, key: str, samples: list[float]) -> Estimate:
        found = self._pooled.get((source, key))
        if found is None:
            found = self._pooled[(source, key)] = _pooled(samples, source)
        return found

    def expected(self, nodeid: str) -> float:
        """The mean seconds of ``nodeid``: what a sum of tests adds up (see the module)."""
        mean = self._mean.get(nodeid)
        return max(mean, MIN_ETC_S) if mean is not None else self.estimate(nodeid).seconds

    def etc(self, nodeid: str) -> float:
        """The expected duration of ``nodeid`` in seconds."""
        return self.estimate(nodeid).seconds

    def remaining(self, nodeid: str, elapsed: float) -> float:
        """Expected seconds left for ``nodeid``, running for ``elapsed`` seconds; always > 0.

        Before its estimate: the estimate minus ``elapsed``. Once it has overrun by ``o``,
        it is assumed to be as far from its end as it is past the estimate, plus its usual
        jitter (``spread + o``), but no further than the heavy-tail expectation
        ``OVERRUN_TAIL_FACTOR * elapsed``: that caps the first guess for a jittery test and
        is what takes over for a test that has run far past anything it did before. Both
        grow with ``elapsed``, and the result is never below :data:`MIN_REMAINING_S`.
        """
        if not elapsed >= 0.0:  # negative or NaN: a clock glitch, read as "just started"
            elapsed = 0.0
        estimate = self.estimate(nodeid)
        if elapsed < estimate.seconds:
            left = estimate.seconds - elapsed
        else:
            overrun = elapsed - estimate.seconds
            left = min(estimate.spread + overrun, OVERRUN_TAIL_FACTOR * elapsed)
        return max(left, MIN_REMAINING_S)

    def total(self, nodeids: Iterable[str]) -> float:
        """The sum of the ETCs of ``nodeids``."""
        return math.fsum(self.etc(nodeid) for nodeid in nodeids)
