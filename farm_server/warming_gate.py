"""When a replacement may start warming beside a run that is testing.

Replacements start at once, except while a run holds claimed workers and the host has
fewer than ``warm_spare_cores`` idle cores: then they wait for spare CPU (or
the run's end). Warming runs at idle CPU priority (idle.lowered_priority), yet
bench_farm.py measured that two replacements warming beside a ``-n 2`` run on two cores
still stretched its tests' wall time by 30 % at equal CPU time (importing scipy is
page faults and memory traffic, which no CPU priority orders); waiting cost that run
nothing and the next claim a few seconds.

When the claimed workers and their controller could fill the host's cores on their own,
idle cores are measured over the run, never over the quiet time before it: a claim
restarts the measure, and warm-ups wait for :data:`CLAIM_SETTLE_S` of it. Judged by the
idle seconds before the claim, replacements started exactly as the run's workers did,
and cost a warm ``-n 2`` run of example_project on two cores 0.33 s of its time to first
result and 0.8 s of wall (interleaved A/B, 5 runs each). On a host with cores to spare
for the run, replacements still start at once.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import psutil

__all__ = ["CLAIM_SETTLE_S", "defer_reason", "idle_cores"]

#: after a claim, seconds of the run's CPU use measured before a replacement may start
CLAIM_SETTLE_S = 1.0


def idle_cores() -> float:
    """Cores idle since the previous call (psutil; the first call primes the measure)."""
    return (os.cpu_count() or 1) * (100.0 - psutil.cpu_percent(interval=None)) / 100.0


def defer_reason(
    *, testing: int, cores: int, spare: float, measured_s: float, idle: Callable[[], float]
) -> str:
    """Why no warm-up may start now ("": it may).

    ``testing``: workers claimed by runs that have not released them; ``measured_s``:
    how long the CPU has been measured since the last claim; ``idle()`` the idle cores
    over that time.
    """
    # From the claim on (the run connects a moment later: waiting for that would let the
    # replacements start exactly as the run does).
    if not testing or spare <= 0:
        return ""
    # The run's workers and its controller may fill every core on their own: then the
    # idle time before the claim says nothing, the run's own use decides.
    could_fill = testing + 1 > cores - spare
    if could_fill and measured_s < CLAIM_SETTLE_S:
        return f"{testing} workers claimed by runs, measuring the CPU they leave idle"
    free = idle()
    if free >= spare:
        return ""
    return (
        f"{testing} workers claimed by runs, {free:.1f} idle cores (< warm_spare_cores {spare:g})"
    )
