"""The per-test priority signals: importance, failure history (with flaky detection), newness.

Each signal is a pure function of plain values; :mod:`pytest_shadowfarm.priority.score`
combines them. Change impact, the fourth signal, needs git and the import graph and
lives in :mod:`~pytest_shadowfarm.priority.impact`.

Failure history is a **recency-weighted failure rate**: the result ``k`` runs old weighs
``0.5 ** (k / half_life)``, so a failure ``half_life`` runs ago counts half as much as
one in the last run. A test whose newest result is a failure gets the full signal (1.0)
whatever its rate, because the best predictor of a failure is a failure in the last
run (the premise of pytest's own ``--ff``).

A test is **flaky** when its outcome flips between pass and fail while the code stays the
same, i.e. between results recorded at the same git commit. One flip at one commit is
not enough: a developer who breaks a test in the working tree (HEAD does not move, the
history only knows HEAD) makes exactly that, and that test must keep its "failed last
time" boost; so :data:`FLAKY_MIN_FLIPS` (2) flips are needed. A flaky test keeps
its failure *rate* as its signal but not the last-run boost: it is likely to pass on the
next try, and ranking it as a certain failure would push real regressions back.
Results without a commit (outside git) never count as flips: the code may have changed.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from pytest_shadowfarm.history.records import FAILING, PastResult
from pytest_shadowfarm.priority.weights import DEFAULT_HALF_LIFE

__all__ = [
    "DEFAULT_HALF_LIFE",
    "FLAKY_MIN_FLIPS",
    "IMPORTANCE_LEVELS",
    "FailureSignal",
    "count_flips",
    "failure_signal",
    "failure_window",
    "importance_label",
    "is_new",
    "parse_importance",
]

#: importance of the marker's named levels; a number may be given instead (same scale)
IMPORTANCE_LEVELS: Mapping[str, float] = {
    "critical": 1.0,
    "high": 0.5,
    "normal": 0.0,
    "low": -0.5,
}
IMPORTANCE_MIN = -1.0
IMPORTANCE_MAX = 1.0

#: pass/fail flips at one commit before a test is called flaky
FLAKY_MIN_FLIPS = 2

_COUNTED = FAILING | {"passed"}


def parse_importance(value: object) -> float:
    """``critical|high|normal|low`` or a number in [-1, 1] → importance; ValueError otherwise."""
    allowed = (
        f"expected one of {', '.join(IMPORTANCE_LEVELS)} "
        f"or a number from {IMPORTANCE_MIN:g} to {IMPORTANCE_MAX:g}"
    )
    if isinstance(value, str):
        level = IMPORTANCE_LEVELS.get(value.strip().lower())
        if level is not None:
            return level
        try:
            number = float(value)
        except ValueError:
            raise ValueError(allowed) from None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    else:
        raise ValueError(allowed)
    if not math.isfinite(number) or not IMPORTANCE_MIN <= number <= IMPORTANCE_MAX:
        raise ValueError(allowed)
    return number


def importance_label(value: float) -> str:
    """The level name of an importance value, or the number itself."""
    for name, level in IMPORTANCE_LEVELS.items():
        if value == level:
            return name
    return f"{value:g}"


@dataclass(frozen=True)
class FailureSignal:
    """What a test's history says about it failing in this run."""

    #: recency-weighted share of failing results, 0..1
    rate: float
    #: the newest counted result is a failure
    last_failed: bool
    #: pass/fail flips between results of one commit
    flips: int
    flaky: bool
    #: results that counted (passed or failing; skips and xfails say nothing)
    samples: int

    @property
    def value(self) -> float:
        """The signal entering the score, 0..1."""
        if self.last_failed and not self.flaky:
            return 1.0
        return self.rate

    @property
    def likely_failure(self) -> bool:
        """Expected to fail again: failed last time (not flaky) or fails most of the time."""
        return not self.flaky and (self.last_failed or self.rate >= 0.5)


NO_FAILURES = FailureSignal(rate=0.0, last_failed=False, flips=0, flaky=False, samples=0)


def count_flips(results: Sequence[PastResult]) -> int:
    """Pass/fail flips between consecutive results recorded at the same (known) commit."""
    last: dict[str, bool] = {}
    flips = 0
    for result in results:
        if result.git_commit and result.outcome in _COUNTED:
            failing = result.outcome in FAILING
            previous = last.get(result.git_commit)
            if previous is not None and previous != failing:
                flips += 1
            last[result.git_commit] = failing
    return flips


def failure_window(half_life: float) -> int:
    """How many newest results the failure signal needs: older ones weigh < 2 % each.

    Six half-lives (at least 30 results): what the history is read with at a run's start.
    """
    return max(30, math.ceil(6 * half_life))


@lru_cache(maxsize=64)
def _decay(half_life: float, count: int) -> tuple[tuple[float, ...], float]:
    """Weights by age (newest first) and their sum: computed once per history length."""
    weights = tuple(0.5 ** (age / half_life) for age in range(count))
    return weights, sum(weights)


def failure_signal(
    results: Sequence[PastResult],
    *,
    half_life: float = DEFAULT_HALF_LIFE,
    flaky_min_flips: int = FLAKY_MIN_FLIPS,
) -> FailureSignal:
    """The failure signal of one test from its past results, oldest first."""
    counted = [r for r in results if r.outcome in _COUNTED]
    if not counted:
        return NO_FAILURES
    if not half_life > 0:
        msg = f"half_life must be > 0, got {half_life!r}"
        raise ValueError(msg)
    weights, total = _decay(float(half_life), len(counted))
    failed = sum(w for w, r in zip(weights, reversed(counted), strict=True) if r.outcome in FAILING)
    flips = count_flips(counted)
    return FailureSignal(
        rate=failed / total,
        last_failed=counted[-1].outcome in FAILING,
        flips=flips,
        flaky=flips >= flaky_min_flips,
        samples=len(counted),
    )


def is_new(nodeid: str, history: Collection[str]) -> bool:
    """Never seen by a history that has seen other tests (an empty history knows nobody).

    ``history``: the tests it has seen (a mapping from them, e.g. nodeid -> results).
    """
    return bool(history) and nodeid not in history
