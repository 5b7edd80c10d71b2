"""The one model of a pytest session on the controller: :class:`Run`.

A run holds everything its features share: the resolved settings, what the history said
at the start, the plan (ETC, priority and urgency per test, computed once), the workers
(one registry), the test events (one schema), the per-test traces, and the clock. The
session writer (:mod:`pytest_shadowfarm.session`) applies pytest's and xdist's hooks to
it; every feature is built with the run (and its other collaborators) passed in, reads
it, and subscribes to its events. No feature looks another up by name.

Nothing here imports pytest: the model is tested with plain values.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pytest_shadowfarm.estimate import Estimator
from pytest_shadowfarm.history.store import RecentHistory
from pytest_shadowfarm.priority.plan import Plan
from pytest_shadowfarm.recorder import RunRecorder
from pytest_shadowfarm.registry import WorkerRegistry

if TYPE_CHECKING:
    from pytest_shadowfarm.history import HistoryStore, HistorySummary
    from pytest_shadowfarm.history.records import Overheads
    from pytest_shadowfarm.settings import Settings

__all__ = ["EventLog", "Run"]

Listener = Callable[[dict[str, Any]], None]


class EventLog:
    """What happened in the run, in order: ``{"event": KIND, "t": SECONDS, ...fields}``.

    One schema for every producer (scheduler, swarm, farm, health); the run report's
    ``events`` list and the farm's telemetry are this list.
    """

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self.entries: list[dict[str, Any]] = []
        self._listeners: list[Listener] = []

    def __len__(self) -> int:
        return len(self.entries)

    def emit(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Record an event now and tell the subscribers."""
        entry: dict[str, Any] = {"event": kind, "t": round(self._now(), 6), **fields}
        self.entries.append(entry)
        for listener in self._listeners:
            listener(entry)
        return entry

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def since(self, index: int) -> list[dict[str, Any]]:
        return self.entries[index:]

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.entries if e["event"] == kind]


class Run:
    """State of one controller session; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.perf_counter,
        wallclock: Callable[[], float] = time.time,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.wallclock = wallclock
        self.t0 = clock()
        self.started_at = wallclock()
        self._warn = warn
        #: under xdist (the controller collects nothing; workers do)
        self.xdist = False
        #: xdist workers the run starts with (0 without xdist): whose past runs it reads
        self.workers_at_start = 0
        # history, as read at the session start
        self.store: HistoryStore | None = None
        self.history: HistorySummary | None = None
        self.recent = RecentHistory(durations={}, call_durations={}, runs={}, failures={})
        self.estimator = Estimator({})
        #: time outside test durations in recent runs like this one (None: unknown)
        self.overheads: Overheads | None = None
        # the plan, the workers, what happens
        self.plan = Plan()
        self.workers = WorkerRegistry(self.now)
        self.events = EventLog(self.now)
        self.recorder = RunRecorder()
        #: nodeid -> extra fields of that test in the run report (e.g. priority components)
        self.test_extras: dict[str, dict[str, Any]] = {}
        #: called before the run report is built, so a run without one never pays for it
        self.extras_providers: list[Callable[[], None]] = []
        #: top-level fields features add to the run report (e.g. "shard", "swarm")
        self.report_extras: dict[str, Any] = {}
        self.wall_s: float | None = None
        self.recorded = False

    def start(self) -> None:
        """The session starts: times are measured from now."""
        self.t0 = self.clock()
        self.started_at = self.wallclock()

    def now(self) -> float:
        """Seconds since the session start."""
        return self.clock() - self.t0

    def elapsed(self) -> float:
        """The run's wall so far, or its final wall once the session ended."""
        return self.wall_s if self.wall_s is not None else self.now()

    def warn(self, message: str) -> None:
        """A :class:`~pytest_shadowfarm.errors.ShadowFarmWarning` in pytest's summary."""
        if self._warn is not None:
            self._warn(message)
