"""The one registry of a run's xdist workers (no pytest import).

Every feature that cares about workers (the scheduler's rejections, the swarm's scaling,
the farm's hand-off, the run report) reads this registry instead of keeping its own
dict of gateway ids. Only the session writer (:mod:`pytest_shadowfarm.session`) and the
features that start or stop workers change it, through its methods.

A worker's states: ``starting`` (asked for, its gateway is being set up) -> ``ready``
(its pytest session runs) -> ``collected`` (it reported its collection) ->
``draining`` (told to shut down once it ran what it holds) -> ``down``. How it ended is
one of :data:`ENDINGS`, with a reason a person can read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ENDINGS", "STATES", "WorkerRecord", "WorkerRegistry"]

STATES = ("starting", "ready", "collected", "draining", "down")
ENDINGS = ("finished", "crashed", "replaced", "drained")


@dataclass
class WorkerRecord:
    """One worker's life in the run: asked for at ``joined_s``, released at ``left_s``."""

    id: str
    warm: bool = False
    joined_s: float = 0.0
    left_s: float | None = None
    #: where it came from: "local" (a popen worker), "farm" (a warm farm worker), "dask"
    source: str = "local"
    #: what runs its process: "local" (this machine's farm or popen) or "dask"
    engine: str = "local"
    #: the machine its process runs on (None: this one)
    host: str | None = None
    state: str = "starting"
    #: added while the run was going on (the swarm, or a replacement)
    late: bool = False
    ready_s: float | None = None
    collected_s: float | None = None
    ended: str | None = None
    reason: str | None = None
    #: why it was replaced ("memory", "errors", "pressure", "age"), "crash" when it crashed
    cause: str | None = None
    #: a warm worker's collection: "reused" (prepared before the run), "collected: <why>"
    collection: str | None = None
    #: xdist's WorkerController, for the features that must talk to the worker
    node: Any = field(default=None, repr=False, compare=False)

    @property
    def live(self) -> bool:
        return self.state != "down"

    @property
    def startup_s(self) -> float | None:
        """From being asked for to its collection: what a new worker costs before work."""
        if self.collected_s is None:
            return None
        return self.collected_s - self.joined_s

    def report(self) -> dict[str, Any]:
        """Its entry in the run report's ``workers`` list."""
        entry: dict[str, Any] = {
            "id": self.id,
            "warm": self.warm,
            "joined_s": _round(self.joined_s),
            "left_s": _round(self.left_s),
            "source": self.source,
            "engine": self.engine,
            "host": self.host,
            "ended": self.ended,
        }
        if self.reason is not None:
            entry["reason"] = self.reason
        if self.cause is not None:
            entry["cause"] = self.cause
        if self.collection is not None:
            entry["collection"] = self.collection
        return entry


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


class WorkerRegistry:
    """Every worker of one run, by its xdist gateway id, in the order they were asked for."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self._workers: dict[str, WorkerRecord] = {}
        self._expected: tuple[float, bool] | None = None
        #: the most workers live at once
        self.peak = 0

    def __iter__(self) -> Iterator[WorkerRecord]:
        return iter(self._workers.values())

    def __len__(self) -> int:
        return len(self._workers)

    def __contains__(self, worker_id: object) -> bool:
        return worker_id in self._workers

    def get(self, worker_id: str) -> WorkerRecord | None:
        return self._workers.get(worker_id)

    def live(self) -> list[WorkerRecord]:
        """The workers not down yet, draining ones included."""
        return [w for w in self._workers.values() if w.live]

    def working(self) -> list[WorkerRecord]:
        """The live workers that take new tests (not draining)."""
        return [w for w in self._workers.values() if w.state in ("starting", "ready", "collected")]

    def startups(self) -> list[float]:
        """Measured start-up seconds of the workers that collected so far."""
        return [s for w in self._workers.values() if (s := w.startup_s) is not None]

    # --- changes (the session writer and the features that start/stop workers) ------------

    def expect(self, at: float | None, *, late: bool = True) -> None:
        """The next new worker was asked for at ``at`` (by the swarm, say); None: forget it.

        xdist names a worker only while it sets it up, so whoever starts one says when it
        asked before it knows the name.
        """
        self._expected = None if at is None else (at, late)

    def asked(
        self, worker_id: str, *, node: Any = None, at: float | None = None, late: bool = False
    ) -> WorkerRecord:
        """A worker is being started (or, already known, gets its node)."""
        record = self._workers.get(worker_id)
        if record is None:
            if at is None and self._expected is not None:
                at, late = self._expected
            record = WorkerRecord(worker_id, joined_s=self._now() if at is None else at, late=late)
            self._workers[worker_id] = record
        if node is not None:
            record.node = node
        self.peak = max(self.peak, len(self.live()))
        return record

    def ready(
        self,
        worker_id: str,
        *,
        warm: bool = False,
        source: str | None = None,
        engine: str | None = None,
        host: str | None = None,
    ) -> None:
        record = self.asked(worker_id)
        record.ready_s = self._now()
        record.warm = warm
        if source is not None:
            record.source = source
        if engine is not None:
            record.engine = engine
        if host is not None:
            record.host = host
        if record.state == "starting":
            record.state = "ready"

    def collected(self, worker_id: str) -> WorkerRecord:
        record = self.asked(worker_id)
        if record.collected_s is None:
            record.collected_s = self._now()
        if record.state in ("starting", "ready"):
            record.state = "collected"
        return record

    def drain(
        self,
        worker_id: str,
        *,
        ended: str = "drained",
        reason: str | None = None,
        cause: str | None = None,
    ) -> None:
        """The worker runs what it holds and then leaves; ``ended`` (and ``cause``) say why."""
        record = self._workers.get(worker_id)
        if record is None or not record.live:
            return
        record.state = "draining"
        record.ended = ended
        record.reason = reason
        record.cause = cause

    def down(
        self,
        worker_id: str,
        *,
        crashed: bool = False,
        reason: str | None = None,
        collection: str | None = None,
    ) -> None:
        record = self._workers.get(worker_id)
        if record is None or not record.live:
            return
        record.collection = collection
        record.state = "down"
        record.left_s = self._now()
        if crashed:
            record.ended = "crashed"
            record.reason = reason
            record.cause = "crash"
        elif record.ended is None:
            record.ended = "finished"

    def close(self, at: float) -> None:
        """The session ended: every worker still up has finished with it."""
        for record in self._workers.values():
            if record.left_s is None:
                record.left_s = at
            if record.ended is None:
                record.ended = "finished"
