"""How far the run's tests have got, as the swarm's policy needs it (no pytest import).

Which tests started and finished, how long the tests without a history took so far (a
first run's estimate of the rest), and how CPU-bound the recent tests were (CPU demand
over wall: a worker per core only pays off for CPU-bound tests).
"""

from __future__ import annotations

import math
from collections import deque

from pytest_shadowfarm.recorder import TestTrace

__all__ = ["RECENT_TESTS", "Progress"]

#: finished tests whose CPU demand / wall make the I/O-boundness estimate
RECENT_TESTS = 50


class Progress:
    """Tests started and finished, and what the finished ones cost."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.finished: set[str] = set()
        self.recent: deque[tuple[float, float]] = deque(maxlen=RECENT_TESTS)
        self.unknown_durations: list[float] = []
        self._cpu_wait: dict[str, float] = {}

    def start(self, nodeid: str, at_s: float) -> None:
        self.started.setdefault(nodeid, at_s)

    def waited(self, nodeid: str, seconds: float) -> None:
        """A phase of the test waited this long for a CPU (telemetry)."""
        self._cpu_wait[nodeid] = self._cpu_wait.get(nodeid, 0.0) + seconds

    def finish(self, trace: TestTrace | None, nodeid: str, *, known: bool) -> None:
        """The test's last report came; ``known``: it had a history of its own."""
        self.finished.add(nodeid)
        waited = self._cpu_wait.pop(nodeid, 0.0)
        if trace is None:
            return
        wall = trace.duration_s
        if trace.cpu_s is not None and wall > 0:
            # CPU demand: the CPU it got plus the time it waited for one (a CPU-bound test
            # on a busy host gets little CPU, but it is not waiting on the network)
            self.recent.append((trace.cpu_s + waited, wall))
        if not known:
            self.unknown_durations.append(wall)

    def running(self) -> list[tuple[str, float]]:
        """(nodeid, start) of the tests started and not finished."""
        return [(n, t) for n, t in self.started.items() if n not in self.finished]

    def cpu_fraction(self) -> float | None:
        """CPU demand / wall of the recently finished tests (None before three reported)."""
        cpu = math.fsum(c for c, _ in self.recent)
        wall = math.fsum(w for _, w in self.recent)
        if len(self.recent) >= 3 and wall > 0.05:
            return min(1.0, cpu / wall)
        return None
