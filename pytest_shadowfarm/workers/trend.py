"""A robust trend of one worker's RSS per test: Theil-Sen slope, level, spread, agreement.

Why not the last delta, or least squares: a worker's RSS moves in steps (a module's
import, a cache filling), drops when the garbage collector frees a cycle or glibc trims
its heap, and spikes during a test. Theil-Sen (the median of the slopes of all pairs of
points) ignores up to ~29% of wild points, and a step shows as a zero slope as long as
fewer than half the pairs straddle it. A step near the middle of the window is the one
case that makes a full-window median rise (with an even number of pairs, half of them
straddling it is enough), so :func:`fit_trend` keeps the smallest of three slopes: the
whole window's, its newer half's, and the whole window's with its largest single rise
taken out. Growth has to go on *now* and in more than one jump, not have happened once.
A leak of a few MiB per test, or per module (a staircase of several steps), passes all
three; one import, or a garbage-collector sawtooth around a flat level, does not.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Trend", "fit_trend", "pair_slopes", "pair_slopes_adjacent", "theil_sen"]


@dataclass(frozen=True)
class Trend:
    """What a window of (tests done, RSS) points says."""

    #: bytes per test (sustained: the smaller of the whole window's and its newer half's)
    slope: float
    #: the trend line's RSS at the newest point
    level: float
    #: the most any point rose above the trend line: the sawtooth / spike headroom to keep
    spread: float
    #: (rising pairs - falling pairs) / pairs, in [-1, 1] (Kendall's tau without tie
    #: terms), with the largest single rise taken out
    agreement: float
    points: int
    #: the upper quartile of the newer half's test-to-test slopes: a bad test's growth
    steep: float = 0.0


def pair_slopes(xs: Sequence[float], ys: Sequence[float]) -> list[float]:
    """The slope of every pair of points with different x."""
    points = list(zip(xs, ys, strict=True))
    return [
        (yj - yi) / (xj - xi)
        for i, (xi, yi) in enumerate(points)
        for xj, yj in points[i + 1 :]
        if xj != xi
    ]


def theil_sen(
    xs: Sequence[float], ys: Sequence[float], slopes: list[float] | None = None
) -> tuple[float, float] | None:
    """(slope, intercept) of the Theil-Sen line; None with fewer than two distinct x.

    ``slopes``: :func:`pair_slopes` of the same points, when the caller has them already.
    """
    slopes = pair_slopes(xs, ys) if slopes is None else slopes
    if not slopes:
        return None
    slope = statistics.median(slopes)
    intercept = statistics.median(y - slope * x for x, y in zip(xs, ys, strict=True))
    return slope, intercept


def fit_trend(xs: Sequence[float], ys: Sequence[float], *, tolerance: float = 0.0) -> Trend | None:
    """The trend of ``ys`` over ``xs``; None with fewer than two distinct x.

    ``tolerance``: a pair whose slope is within it counts as flat in ``agreement``
    (RSS moves by a page or two between any two tests).
    """
    line = theil_sen(xs, ys)
    if line is None:
        return None
    slope, intercept = line
    half = len(xs) // 2
    candidates = [slope]
    if len(xs) - half >= 3:  # the newer half alone, when it has enough points to say
        recent = theil_sen(xs[half:], ys[half:])
        if recent is not None:
            candidates.append(recent[0])
    flat = _without_largest_jump(ys)
    flat_slopes = pair_slopes(xs, flat)  # for the unjumped line and for the agreement
    unjumped = theil_sen(xs, flat, flat_slopes)
    if unjumped is not None:
        candidates.append(unjumped[0])
    if min(candidates) < slope:
        slope = min(candidates)
        intercept = statistics.median(y - slope * x for x, y in zip(xs, ys, strict=True))
    level = intercept + slope * xs[-1]
    spread = max(0.0, *(y - (intercept + slope * x) for x, y in zip(xs, ys, strict=True)))
    # Agreement and steepness without the largest jump, steepness from the newer half:
    # one step (an import) says nothing about how steadily, or how fast, it grows now.
    slopes = flat_slopes
    rising = sum(1 for s in slopes if s > tolerance)
    falling = sum(1 for s in slopes if s < -tolerance)
    steps = pair_slopes_adjacent(xs[half:], flat[half:])
    steep = statistics.quantiles(steps, n=4)[2] if len(steps) >= 2 else slope
    return Trend(slope, level, spread, (rising - falling) / len(slopes), len(xs), steep)


def _without_largest_jump(ys: Sequence[float]) -> list[float]:
    """``ys`` with its largest rise from one point to the next taken out (a step flattened)."""
    rises = [ys[i + 1] - ys[i] for i in range(len(ys) - 1)]
    if not rises or max(rises) <= 0:
        return list(ys)
    at = rises.index(max(rises)) + 1
    return [*ys[:at], *(y - rises[at - 1] for y in ys[at:])]


def pair_slopes_adjacent(xs: Sequence[float], ys: Sequence[float]) -> list[float]:
    """The slope from each point to the next (with a different x)."""
    return [
        (ys[i + 1] - ys[i]) / (xs[i + 1] - xs[i]) for i in range(len(xs) - 1) if xs[i + 1] != xs[i]
    ]
