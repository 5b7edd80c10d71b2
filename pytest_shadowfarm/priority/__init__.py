"""Test prioritization: score every test and order the run by urgency = priority / ETC.

Nothing in this package imports pytest. The plugin layer
(:mod:`pytest_shadowfarm.ordering`) reads markers and settings and passes plain values;
the xdist scheduler calls :func:`rank` with the node ids it knows.

Modules: :mod:`.signals` (importance, failure history, flaky, newness), :mod:`.changes`
(changed files from git), :mod:`.imports` (static import graph), :mod:`.impact` (change
impact per test module), :mod:`.score` (weights, priority, urgency, :func:`rank`),
:mod:`.order` (grouped / test / none), :mod:`.explain` (header and ``--sf-explain`` lines).

The stable API::

    rank(nodeids, *, etc: Mapping[str, float], marker_priority: Mapping[str, float],
         history: Mapping[str, Sequence[PastResult]], changed: ChangeImpact | None,
         weights: Weights = DEFAULT_WEIGHTS, half_life: float = 5.0,
         etc_floor: float = ETC_FLOOR_S,
         known: Collection[str] | None = None) -> dict[str, Ranked]

    analyze_changes(rootdir, nodeids, *, base=None, search_paths=(), cache_path=None)
        -> ChangeImpact   # raises ChangeDetectionError when git cannot tell
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_shadowfarm.lazy import lazy_exports

if TYPE_CHECKING:
    from pytest_shadowfarm.priority.changes import ChangedFiles, changed_files
    from pytest_shadowfarm.priority.impact import ChangeImpact, Impact, analyze_changes
    from pytest_shadowfarm.priority.order import MODES, Entry, ordered
    from pytest_shadowfarm.priority.score import ETC_FLOOR_S, Priority, Ranked, rank, urgency
    from pytest_shadowfarm.priority.signals import (
        IMPORTANCE_LEVELS,
        FailureSignal,
        failure_signal,
        is_new,
        parse_importance,
    )
    from pytest_shadowfarm.priority.weights import DEFAULT_HALF_LIFE, DEFAULT_WEIGHTS, Weights

# The names below are imported from their module on first use: the settings need two
# defaults, not the import graph, git or the estimator. (The functions ``order.order``
# and ``score.score`` are not re-exported: their names are taken by their modules.)
_EXPORTS = {
    **dict.fromkeys(("ChangedFiles", "changed_files"), "changes"),
    **dict.fromkeys(("ChangeImpact", "Impact", "analyze_changes"), "impact"),
    **dict.fromkeys(("MODES", "Entry", "ordered"), "order"),
    **dict.fromkeys(("ETC_FLOOR_S", "Priority", "Ranked", "rank", "urgency"), "score"),
    **dict.fromkeys(("DEFAULT_HALF_LIFE", "DEFAULT_WEIGHTS", "Weights"), "weights"),
    **dict.fromkeys(
        (
            "IMPORTANCE_LEVELS",
            "FailureSignal",
            "failure_signal",
            "is_new",
            "parse_importance",
        ),
        "signals",
    ),
}

__all__ = [
    "DEFAULT_HALF_LIFE",
    "DEFAULT_WEIGHTS",
    "ETC_FLOOR_S",
    "IMPORTANCE_LEVELS",
    "MODES",
    "ChangeImpact",
    "ChangedFiles",
    "Entry",
    "FailureSignal",
    "Impact",
    "Priority",
    "Ranked",
    "Weights",
    "analyze_changes",
    "changed_files",
    "failure_signal",
    "is_new",
    "ordered",
    "parse_importance",
    "rank",
    "urgency",
]


__getattr__ = lazy_exports(__name__, _EXPORTS)
