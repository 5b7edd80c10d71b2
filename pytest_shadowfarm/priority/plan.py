"""The plan of a run: ETC per test, then priority and urgency, each computed once.

The single-process order (:mod:`pytest_shadowfarm.ordering`) and the xdist scheduler
(:mod:`pytest_shadowfarm.sched`) both read the one :class:`Plan` a :class:`Planner`
fills: the ETC of the tests the run will execute, then their ranking (markers, failure
history, change impact, newness). Nothing here imports pytest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_shadowfarm.errors import ChangeDetectionError

if TYPE_CHECKING:
    from pytest_shadowfarm.estimate import Estimator
    from pytest_shadowfarm.history.store import RecentHistory
    from pytest_shadowfarm.priority.impact import ChangeImpact
    from pytest_shadowfarm.priority.score import Ranked
    from pytest_shadowfarm.priority.weights import Weights

__all__ = ["ChangeSettings", "Plan", "Planner"]


@dataclass
class Plan:
    """What the run expects of each test: ETC, and once ranked, priority and urgency."""

    #: nodeid -> estimated seconds (history, or borrowed from similar tests)
    etc: dict[str, float] = field(default_factory=dict)
    #: the part of ``etc`` that comes from the test's own history
    known_etc: dict[str, float] = field(default_factory=dict)
    #: the sum of the tests' mean durations (None while no test has history)
    predicted_total_s: float | None = None
    #: nodeid -> mean seconds: what the predicted total adds up (see Estimator.expected)
    expected: dict[str, float] = field(default_factory=dict)
    #: nodeid -> priority, urgency and their reasons (empty until ranked)
    ranked: dict[str, Ranked] = field(default_factory=dict)
    #: nodeid -> importance from ``@pytest.mark.shadowfarm``
    markers: dict[str, float] = field(default_factory=dict)
    #: nodeid -> xdist_group (under ``--dist loadgroup``)
    groups: dict[str, str] = field(default_factory=dict)
    changed: ChangeImpact | None = None
    #: why the change-impact signal is off, when it is
    change_note: str | None = None

    def report_extras(self) -> dict[str, dict[str, Any]]:
        """nodeid -> the ranking fields of that test in the run report."""
        return {
            nodeid: {
                "priority": round(r.priority, 6),
                "priority_components": {k: round(v, 6) for k, v in r.components.items()},
                "urgency": round(r.urgency, 6),
                "priority_reasons": list(r.reasons),
                "likely_failure": r.likely_failure,
                "flaky": r.flaky,
            }
            for nodeid, r in self.ranked.items()
        }


@dataclass(frozen=True)
class ChangeSettings:
    """Where the change-impact signal looks: the repository, its base, the import paths."""

    rootdir: Path
    base: str | None = None
    #: the ini ``pythonpath`` entries (rootdir and rootdir/src are always searched)
    search_paths: Sequence[Path] = ()
    cache_path: Path | None = None
    enabled: bool = True


class Planner:
    """Fills one :class:`Plan`: :meth:`estimate` the selected tests, then :meth:`rank` them."""

    def __init__(
        self, plan: Plan, *, weights: Weights, half_life: float, changes: ChangeSettings
    ) -> None:
        self.plan = plan
        self.weights = weights
        self.half_life = half_life
        self.changes = changes

    def estimate(self, nodeids: Sequence[str], estimator: Estimator) -> None:
        """ETC of every test the run executes (a second call with more tests adds them)."""
        plan = self.plan
        missing = [n for n in nodeids if n not in plan.etc]
        for nodeid in missing:
            est = estimator.estimate(nodeid)
            plan.etc[nodeid] = est.seconds
            plan.expected[nodeid] = estimator.expected(nodeid)
            if est.source == "history":
                plan.known_etc[nodeid] = est.seconds
        plan.predicted_total_s = sum(plan.expected.values()) if plan.known_etc else None

    def change_impact(self, nodeids: Sequence[str]) -> ChangeImpact | None:
        """The change signal for these tests (once per run); None with a note when off."""
        from pytest_shadowfarm.priority.impact import analyze_changes

        if not self.changes.enabled:
            return None
        if self.plan.changed is not None or self.plan.change_note is not None:
            return self.plan.changed
        c = self.changes
        try:
            self.plan.changed = analyze_changes(
                c.rootdir,
                nodeids,
                base=c.base,
                search_paths=c.search_paths,
                cache_path=c.cache_path,
            )
        except (ChangeDetectionError, OSError) as exc:
            self.plan.change_note = f"shadowfarm: change impact off: {exc}"
        return self.plan.changed

    def rank(
        self,
        nodeids: Sequence[str],
        estimator: Estimator,
        recent: RecentHistory,
        markers: Mapping[str, float] | None = None,
    ) -> dict[str, Ranked]:
        """Priority and urgency of these tests, computed once and kept in the plan."""
        from pytest_shadowfarm.priority.score import rank

        plan = self.plan
        if markers is not None:
            plan.markers.update(markers)
        self.estimate(nodeids, estimator)
        plan.ranked = rank(
            nodeids,
            etc=plan.etc,
            marker_priority=plan.markers,
            history=recent.failures,
            known=recent.runs,
            changed=self.change_impact(nodeids),
            weights=self.weights,
            half_life=self.half_life,
        )
        return plan.ranked
