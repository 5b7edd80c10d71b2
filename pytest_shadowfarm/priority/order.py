"""Run orders over (nodeid, module, urgency, priority, etc) entries: pure and deterministic.

- ``grouped`` (default): a module runs as one block, so its module-scoped fixtures are
  set up once; inside it, classes are blocks too, and tests go by urgency.
- ``test``: every test by its own urgency, whatever its module.
- ``none``: the order given.

How blocks are ranked in ``grouped``: a block that holds a *signalled* test (one that
failed recently, was changed or is new: :attr:`Entry.signalled`) goes before every block
that holds none, and inside a block its signalled tests go first. Signalled blocks rank
by their signalled tests' priority over those tests' ETC, because those tests run first
in the block and are what the block's early failures come from; a slow module with one
test that failed last time must not sink behind a thousand fast passing ones. The
other blocks rank by the block's total priority over its total ETC
(Smith's rule with the block as one job). Once a block starts it runs to its end, so what
it costs the blocks behind it is its *whole* time; with priorities read as expected
failures, swapping two neighbouring blocks A, B changes the sum of failure times by
``P_A·T_B - P_B·T_A``, so this ranking is the one that minimises it (the quantity APFD
measures). Ranking blocks by their single most urgent test instead lets one short
critical test pull a long module ahead of a test that failed last time: the benchmark
(benchmarks/bench_priority.py) measured exactly that.

Every tie is broken by the position in the input (the collection index), so the same
inputs always give the same order, and an order is always a permutation of the input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple, TypeVar

from pytest_shadowfarm.estimate import function_key
from pytest_shadowfarm.priority.score import ETC_FLOOR_S

__all__ = ["MODES", "Entry", "class_path", "order", "ordered"]

MODES = ("grouped", "test", "none")

_T = TypeVar("_T")


class Entry(NamedTuple):
    """One test to order; a plain 5-tuple in this order works too."""

    nodeid: str
    #: the block key: the file part of the nodeid
    module: str
    urgency: float
    priority: float
    #: expected seconds
    etc: float
    #: failed recently, changed or new: its block goes to the front and it goes first in it
    signalled: bool = False


def class_path(nodeid: str) -> tuple[str, ...]:
    """The class names between the file and the test name ("a.py::A::B::t[x]" → ("A", "B"))."""
    bare = function_key(nodeid)
    if bare is None:
        return ()
    return tuple(bare.split("::")[1:-1])


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0  # NaN/inf never break the sort


def order(entries: Sequence[Entry], mode: str, *, etc_floor: float = ETC_FLOOR_S) -> list[int]:
    """The positions of ``entries`` in run order for ``mode`` (one of :data:`MODES`)."""
    if mode not in MODES:
        msg = f"unknown order {mode!r}; expected one of {', '.join(MODES)}"
        raise ValueError(msg)
    indices = range(len(entries))
    if mode == "none":
        return list(indices)
    urgencies = [_finite(e[2]) for e in entries]
    if mode == "test":
        return sorted(indices, key=lambda i: (-urgencies[i], i))
    # a plain 5-tuple has no signalled flag
    hot = [len(e) > 5 and bool(e[5]) for e in entries]
    # grouped: each entry sorts by the (block rank, first index) of every block it is in,
    # outermost first, then by its own (urgency, index). Distinct blocks at one level
    # never share a first index, so blocks cannot interleave.
    paths = [(e[1], *class_path(e[0])) for e in entries]
    # per block: [priority, seconds] of all its tests, and of its signalled tests
    totals: dict[tuple[str, ...], list[float]] = {}
    first: dict[tuple[str, ...], int] = {}
    for i, path in enumerate(paths):
        priority, seconds = max(0.0, _finite(entries[i][3])), max(0.0, _finite(entries[i][4]))
        for depth in range(1, len(path) + 1):
            prefix = path[:depth]
            total = totals.setdefault(prefix, [0.0, 0.0, 0.0, 0.0, 0.0])
            total[0] += priority
            total[1] += seconds
            if hot[i]:
                total[2] += priority
                total[3] += seconds
                total[4] = 1.0
            first.setdefault(prefix, i)
    rank = {
        prefix: (
            (0, -(t[2] / max(t[3], etc_floor)), first[prefix])
            if t[4]
            else (1, -(t[0] / max(t[1], etc_floor)), first[prefix])
        )
        for prefix, t in totals.items()
    }

    def key(i: int) -> list[tuple[int, float, int]]:
        path = paths[i]
        own = (0 if hot[i] else 1, -urgencies[i], i)
        return [rank[path[:d]] for d in range(1, len(path) + 1)] + [own]

    return sorted(indices, key=key)


def ordered(items: Sequence[_T], entries: Sequence[Entry], mode: str) -> list[_T]:
    """``items`` (parallel to ``entries``) in run order."""
    return [items[i] for i in order(entries, mode)]
