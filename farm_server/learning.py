"""What the farm learns per profile from how its workers ended: a max age for the next runs.

A run gives each claimed worker back with how it ended
(:class:`~shadowfarm_wire.endings.WorkerEnding`). A worker that crashed, or that the
run's health watch replaced because it was getting sick (memory, setup errors, memory
pressure), says how long this profile's workers stay healthy. From those the farm sets
the profile's *max age*: the tests (and seconds) a worker may serve before the run
recycles it with a fresh one, so later runs replace their workers before they get sick
instead of after.

The rule (:func:`learn`), over the sick endings of the last :data:`MEMORY_S`:

* each sick ending gives a safe age: the age of a worker the run replaced because it
  was getting sick (the health watch took it out ahead of its failure, with its own
  margin), :data:`SAFETY` times the age of one that crashed (it had no margin);
* the max age is the median safe age of the newest :data:`CONSIDERED` sick endings (the
  median, so that one worker that crashed early for another reason does not set the age
  for all: a crash after fewer than :data:`MIN_TESTS` tests is counted but says nothing
  about age), never below :data:`MIN_TESTS` tests or :data:`MIN_SECONDS` seconds;
* planned recycling (cause ``age``) is not sickness: it never lowers the age further,
  so the age does not ratchet down while the workers are healthy;
* sick endings older than :data:`MEMORY_S` are forgotten: a profile whose leak was fixed
  loses its max age after that long.

Pure: no clock, no database; the farm feeds the endings it stored.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass

from shadowfarm_wire.endings import MaxAge, WorkerEnding

__all__ = [
    "CONSIDERED",
    "MEMORY_S",
    "MIN_SECONDS",
    "MIN_TESTS",
    "SAFETY",
    "Learned",
    "StoredEnding",
    "learn",
]

#: a worker is recycled at this share of the age at which its profile's workers crashed
SAFETY = 0.75
#: never recycle sooner than this (a fresh worker costs a start-up)
MIN_TESTS = 5
MIN_SECONDS = 10.0
#: sick endings this old are forgotten (7 days)
MEMORY_S = 7 * 86400.0
#: the newest sick endings the age is taken from
CONSIDERED = 5


@dataclass(frozen=True)
class StoredEnding:
    """An ending as the farm keeps it: when it was reported, and for which worker."""

    at: float
    worker_id: str
    ending: WorkerEnding


@dataclass(frozen=True)
class Learned:
    """A profile's history in short, and the max age the farm gives its claims."""

    max_age: MaxAge
    #: endings remembered (all kinds), and of those, sick ones / crashes within MEMORY_S
    endings: int = 0
    sick: int = 0
    crashes: int = 0
    #: replaced at the max age (planned, not sick), within MEMORY_S
    recycled: int = 0
    #: the newest sick ending's reason, for ``farm status``
    last_reason: str = ""

    def to_dict(self) -> dict[str, object]:
        return {
            "max_age_tests": self.max_age.tests,
            "max_age_s": self.max_age.seconds,
            "basis": self.max_age.basis,
            "endings": self.endings,
            "sick": self.sick,
            "crashes": self.crashes,
            "recycled": self.recycled,
            "last_reason": self.last_reason or None,
        }


def _median_safe_age(sick: list[StoredEnding], unit: str, floor: float) -> float | None:
    """The median age (``unit``: "tests" or "seconds") the profile's workers may safely
    reach, from sick endings at ``floor`` or older (None: none)."""
    safe = []
    for stored in sick:
        age = float(getattr(stored.ending, unit))
        if age >= floor:
            safe.append(SAFETY * age if stored.ending.ended == "crashed" else age)
    return statistics.median(safe) if safe else None


def learn(endings: Iterable[StoredEnding], now: float) -> Learned:
    """The max age of a profile whose workers ended as ``endings`` (any order)."""
    every = sorted(endings, key=lambda e: e.at)
    recent = [e for e in every if now - e.at <= MEMORY_S]
    sick = [e for e in recent if e.ending.sick]
    crashes = sum(1 for e in sick if e.ending.ended == "crashed")
    recycled = sum(1 for e in recent if e.ending.ended == "replaced" and e.ending.cause == "age")
    newest = sick[-CONSIDERED:]
    tests = _median_safe_age(newest, "tests", MIN_TESTS)
    seconds = _median_safe_age(newest, "seconds", MIN_SECONDS)
    max_tests = None if tests is None else max(MIN_TESTS, math.floor(tests))
    max_seconds = None if seconds is None else max(MIN_SECONDS, round(seconds, 1))
    basis = ""
    if sick:
        causes = sorted({e.ending.cause or e.ending.ended for e in sick})
        days = MEMORY_S / 86400
        basis = f"{len(sick)} sick workers ({', '.join(causes)}) in {days:g} days"
        if tests is not None:
            basis += f", safe for {tests:g} tests"
        if seconds is not None:
            basis += f" / {seconds:.0f}s"
    return Learned(
        max_age=MaxAge(tests=max_tests, seconds=max_seconds, basis=basis),
        endings=len(every),
        sick=len(sick),
        crashes=crashes,
        recycled=recycled,
        last_reason=sick[-1].ending.reason if sick else "",
    )
