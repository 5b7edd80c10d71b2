"""Combine the signals into one priority per test, and the priority and ETC into urgency.

``priority = base + marker·importance + failure·F + change·C + new·N`` (floored at 0),
each signal in 0..1 (importance in -1..1, see :mod:`.signals`), each weight from
``[tool.shadowfarm.weights]``. ``urgency = priority / max(ETC, ETC_FLOOR_S)``.

Why divide by ETC: ordering by ``p / t`` (Smith's rule) minimises the expected time to
the first failure when test ``i`` fails with probability ``p`` and takes ``t``: swapping
two neighbours helps exactly when the later one has the larger ``p / t``. The priority
plays the part of ``p``, which is why the weights read like probabilities (a test that
failed last run fails again far more often than a test in a changed file), and why
``base``, the prior of a test without any signal, is small but not zero: with nothing
else known, short tests go first. The floor keeps a test recorded at 0.1 ms from
looking a thousand times more urgent than one of 0.1 s.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pytest_shadowfarm.estimate import DEFAULT_ETC_S
from pytest_shadowfarm.history.records import PastResult
from pytest_shadowfarm.priority.signals import (
    DEFAULT_HALF_LIFE,
    FailureSignal,
    failure_signal,
    importance_label,
    is_new,
)
from pytest_shadowfarm.priority.weights import DEFAULT_WEIGHTS, Weights

if TYPE_CHECKING:
    from pytest_shadowfarm.priority.impact import ChangeImpact, Impact

__all__ = [
    "DEFAULT_WEIGHTS",
    "ETC_FLOOR_S",
    "Priority",
    "Ranked",
    "Weights",
    "rank",
    "score",
    "urgency",
]

#: no test is treated as shorter than this when computing urgency
ETC_FLOOR_S = 0.05


@dataclass(frozen=True)
class Priority:
    """The priority of one test: the score, what each signal added, and why (for people)."""

    score: float
    components: Mapping[str, float] = field(default_factory=dict)
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Ranked:
    """A test's priority, ETC and urgency: what ordering and scheduling read."""

    nodeid: str
    #: the priority score (>= 0)
    priority: float
    #: signal name -> weighted contribution ("base", "marker", "failure", "change", "new")
    components: Mapping[str, float]
    #: short human reasons, strongest signal first
    reasons: tuple[str, ...]
    #: expected seconds (as given, before the floor)
    etc: float
    #: priority / max(etc, ETC_FLOOR_S)
    urgency: float
    #: failed last time and not flaky, or fails most of the time
    likely_failure: bool
    flaky: bool

    @property
    def signalled(self) -> bool:
        """Failed recently, changed or new: what the grouped order brings to the front."""
        return any(self.components.get(k, 0.0) > 0 for k in ("failure", "change", "new"))


def score(
    *,
    importance: float = 0.0,
    failure: FailureSignal | None = None,
    change: Impact | None = None,
    new: bool = False,
    weights: Weights = DEFAULT_WEIGHTS,
) -> Priority:
    """The priority of one test from its signals (each optional)."""
    components = {"base": weights.base}
    reasons: list[tuple[float, str]] = []
    if importance:
        components["marker"] = weights.marker * importance
        reasons.append((components["marker"], f"marked {importance_label(importance)}"))
    if failure is not None and (failure.value or failure.flaky):
        components["failure"] = weights.failure * failure.value
        if failure.flaky:
            text = f"flaky ({failure.flips} pass/fail flips at one commit)"
        elif failure.last_failed:
            text = "failed last time"
        else:
            text = f"failure rate {failure.rate:.0%}"
        reasons.append((components["failure"], text))
    if change is not None:
        components["change"] = weights.change * change.value
        reasons.append((components["change"], change.reason))
    if new:
        components["new"] = weights.new
        reasons.append((components["new"], "new test"))
    total = max(0.0, sum(components.values()))
    ordered = tuple(text for _, text in sorted(reasons, key=lambda r: -r[0]))
    return Priority(score=total, components=components, reasons=ordered)


def urgency(priority: float, etc: float, floor: float = ETC_FLOOR_S) -> float:
    """``priority / max(etc, floor)``; a NaN or negative ETC counts as the floor."""
    seconds = etc if math.isfinite(etc) and etc > floor else floor
    return priority / seconds


def rank(
    nodeids: Iterable[str],
    *,
    etc: Mapping[str, float],
    marker_priority: Mapping[str, float],
    history: Mapping[str, Sequence[PastResult]],
    changed: ChangeImpact | None,
    weights: Weights = DEFAULT_WEIGHTS,
    half_life: float = DEFAULT_HALF_LIFE,
    etc_floor: float = ETC_FLOOR_S,
    known: Collection[str] | None = None,
) -> dict[str, Ranked]:
    """Score every test; the stable entry point for ordering and for the xdist scheduler.

    Signature (kept stable)::

        rank(nodeids, *, etc: Mapping[str, float], marker_priority: Mapping[str, float],
             history: Mapping[str, Sequence[PastResult]], changed: ChangeImpact | None,
             weights: Weights = DEFAULT_WEIGHTS, half_life: float = 5.0,
             etc_floor: float = ETC_FLOOR_S,
             known: Collection[str] | None = None) -> dict[str, Ranked]

    - ``etc``: nodeid -> expected seconds (missing: ``DEFAULT_ETC_S``);
    - ``marker_priority``: nodeid -> importance, already parsed with
      :func:`~.signals.parse_importance` (missing: 0, "normal");
    - ``history``: ``HistoryStore.results_by_test()`` (nodeid -> results, oldest first);
    - ``changed``: :func:`~.impact.analyze_changes`'s result, or None when the change
      signal is off;
    - ``known``: every test the history has seen (default: the keys of ``history``),
      for a history that lists only the tests with failures
      (:class:`~pytest_shadowfarm.history.store.RecentHistory`).

    Pure and deterministic: the same inputs give the same records. The result keeps the
    order of ``nodeids`` (duplicates collapse into one entry).
    """
    ranked: dict[str, Ranked] = {}
    for nodeid in nodeids:
        past = history.get(nodeid, ())
        failure = failure_signal(past, half_life=half_life) if past else None
        prio = score(
            importance=marker_priority.get(nodeid, 0.0),
            failure=failure,
            change=changed.for_nodeid(nodeid) if changed is not None else None,
            new=is_new(nodeid, history if known is None else known),
            weights=weights,
        )
        seconds = etc.get(nodeid, DEFAULT_ETC_S)
        ranked[nodeid] = Ranked(
            nodeid=nodeid,
            priority=prio.score,
            components=prio.components,
            reasons=prio.reasons,
            etc=seconds,
            urgency=urgency(prio.score, seconds, etc_floor),
            likely_failure=failure is not None and failure.likely_failure,
            flaky=failure is not None and failure.flaky,
        )
    return ranked
