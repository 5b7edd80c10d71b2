"""When the health monitor acts: its thresholds, and how tests left become a score.

The score is what a user reads ("gw1 0.86"): 0 is healthy, 1 is failing now. It is
built so that the two thresholds mean the two lead times: ``swap`` is reached when
the worker has ``swap_margin_tests`` left (what it holds and runs, plus one), and
``prepare`` when it has just enough left for a replacement to start (the measured
start-up in tests, times ``startup_safety``) before that, plus ``prepare_margin_tests``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Thresholds", "score_for_tests_left"]


@dataclass(frozen=True)
class Thresholds:
    """When to act; the defaults keep a steady or step-then-flat worker ``ok``."""

    #: score at which a replacement is started / the worker is swapped out
    prepare: float = 0.5
    swap: float = 0.8
    #: newest samples the trend is fitted on, and how many it needs first
    window: int = 24
    min_samples: int = 6
    #: tests left at which the worker stops getting tests: what it already holds (the
    #: scheduler commits two) and the test it runs, plus one for a misjudged slope
    swap_margin_tests: float = 4.0
    #: tests of slack on top of the replacement's start-up before ``prepare``
    prepare_margin_tests: float = 3.0
    #: the start-up time is multiplied by this (a busy host starts workers slower)
    startup_safety: float = 1.5
    #: growth slower than this (bytes per test) is no growth (caches, pytest's own reports)
    min_slope_bytes: float = 64 * 1024
    #: a worker whose last trend was flat is fitted again after this many tests, or as
    #: soon as a sample rises above that trend's band (a growing one after each test):
    #: on tiny tests the fit was most of the controller's CPU
    refit_flat_tests: int = 12
    #: a trend whose confidence is below this cannot start a replacement on its own
    min_confidence: float = 0.4
    #: a worker this old (tests) is replaced whatever its memory does; None: no limit
    max_age_tests: int | None = None
    #: the same in seconds of work, used only when no ``max_age_tests`` is set (a leak
    #: per test follows tests, and seconds per test vary with the host's load)
    max_age_s: float | None = None
    #: where the max age comes from, for the reason ("the farm: 3 sick workers ...")
    max_age_basis: str = ""
    #: OSErrors (in setup) that make a worker ``prepare`` / ``swap``
    oserrors_prepare: int = 1
    oserrors_swap: int = 3
    #: PSI "some" avg10 % from which the fastest-growing worker is at least ``prepare``
    pressure_pct: float = 40.0
    #: a ``prepare`` is kept until the score drops this far below the threshold
    hysteresis: float = 0.15

    def __post_init__(self) -> None:
        if not 0 < self.prepare < self.swap <= 1:
            msg = f"need 0 < prepare < swap <= 1, got prepare={self.prepare} swap={self.swap}"
            raise ValueError(msg)
        if self.min_samples < 3 or self.window < self.min_samples:
            msg = f"need 3 <= min_samples <= window, got {self.min_samples} and {self.window}"
            raise ValueError(msg)


def score_for_tests_left(left: float, swap_at: float, prepare_at: float, th: Thresholds) -> float:
    """Tests left -> score: 1 at 0, ``th.swap`` at ``swap_at``, ``th.prepare`` at
    ``prepare_at``, falling to 0 at three times ``prepare_at``."""
    if left <= 0:
        return 1.0
    if left <= swap_at:
        return th.swap + (1 - th.swap) * (1 - left / swap_at)
    if left <= prepare_at:
        return th.prepare + (th.swap - th.prepare) * (prepare_at - left) / (prepare_at - swap_at)
    far = 3 * prepare_at
    return max(0.0, th.prepare * (far - left) / (far - prepare_at))
