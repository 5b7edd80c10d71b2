"""Run orders over (nodeid, module, urgency) entries: pure, stable, deterministic.

- ``grouped`` (default): modules by the highest urgency among their tests, then inside a
  module the classes (and top-level tests) the same way, then tests by urgency. A module
  or class stays contiguous, so its module- and class-scoped fixtures are set up once.
- ``test``: every test by its own urgency, whatever its module.
- ``none``: the order given.

Every tie is broken by the position in the input (the collection index), so the same
inputs always give the same order, and an order is always a permutation of the input.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, TypeVar

from pytest_shadowfarm.estimate import function_key

__all__ = ["MODES", "Entry", "class_path", "order", "ordered"]

MODES = ("grouped", "test", "none")

_T = TypeVar("_T")


class Entry(NamedTuple):
    """One test to order; a plain ``(nodeid, module, urgency)`` tuple works too."""

    nodeid: str
    module: str
    urgency: float


def class_path(nodeid: str) -> tuple[str, ...]:
    """The class names between the file and the test name ("a.py::A::B::t[x]" → ("A", "B"))."""
    bare = function_key(nodeid)
    if bare is None:
        return ()
    return tuple(bare.split("::")[1:-1])


def _urgency(value: float) -> float:
    return value if value == value else 0.0  # NaN sorts as "no urgency", never breaks sort


def order(entries: Sequence[tuple[str, str, float]], mode: str) -> list[int]:
    """The positions of ``entries`` in run order for ``mode`` (one of :data:`MODES`)."""
    if mode not in MODES:
        msg = f"unknown order {mode!r}; expected one of {', '.join(MODES)}"
        raise ValueError(msg)
    indices = range(len(entries))
    if mode == "none":
        return list(indices)
    if mode == "test":
        return sorted(indices, key=lambda i: (-_urgency(entries[i][2]), i))
    # grouped: each entry sorts by the (best urgency, first index) of each group it is in,
    # outermost first, then by its own (urgency, index). Distinct groups at one level
    # never share a first index, so groups cannot interleave.
    paths = [(module, *class_path(nodeid)) for nodeid, module, _ in entries]
    best: dict[tuple[str, ...], tuple[float, int]] = {}
    for i, path in enumerate(paths):
        u = -_urgency(entries[i][2])
        for depth in range(1, len(path) + 1):
            prefix = path[:depth]
            seen = best.get(prefix)
            if seen is None or u < seen[0]:
                best[prefix] = (u, seen[1] if seen is not None else i)

    def key(i: int) -> list[tuple[float, int]]:
        path = paths[i]
        return [best[path[:d]] for d in range(1, len(path) + 1)] + [(-_urgency(entries[i][2]), i)]

    return sorted(indices, key=key)


def ordered(items: Sequence[_T], entries: Sequence[tuple[str, str, float]], mode: str) -> list[_T]:
    """``items`` (parallel to ``entries``) in run order."""
    return [items[i] for i in order(entries, mode)]
