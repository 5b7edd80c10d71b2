"""Per-test scheduler inputs (ETC, urgency, priority, front flag) from the priority engine's ranks.

Pure: takes the ranked records of :func:`pytest_shadowfarm.priority.rank` and returns
:class:`~pytest_shadowfarm.sched.policy.TestInputs` per node id.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from pytest_shadowfarm.sched.policy import TestInputs

__all__ = ["CRITICAL", "RankedLike", "from_ranked"]

#: importance from which a marked test is dispatched in the front (``critical``)
CRITICAL = 1.0


class RankedLike(Protocol):
    """The fields of :class:`pytest_shadowfarm.priority.Ranked` the scheduler reads."""

    @property
    def priority(self) -> float: ...
    @property
    def etc(self) -> float: ...
    @property
    def urgency(self) -> float: ...
    @property
    def likely_failure(self) -> bool: ...
    @property
    def components(self) -> Mapping[str, float]: ...


def from_ranked(
    ranked: Mapping[str, RankedLike], marker_priority: Mapping[str, float]
) -> dict[str, TestInputs]:
    """Front = likely to fail, marked critical, touched by the change, or new."""
    out = {}
    for nodeid, r in ranked.items():
        front = (
            r.likely_failure
            or marker_priority.get(nodeid, 0.0) >= CRITICAL
            or r.components.get("change", 0.0) > 0.0
            or r.components.get("new", 0.0) > 0.0
        )
        out[nodeid] = TestInputs(
            etc_s=r.etc, urgency=r.urgency, priority=r.priority, front=bool(front)
        )
    return out
