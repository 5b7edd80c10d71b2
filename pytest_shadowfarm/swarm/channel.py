"""The controller's end of the telemetry channels: a thread-safe inbox and per-worker state.

One execnet channel per worker, opened on the worker's gateway before xdist starts the
worker (``pytest_configure_node``) and handed over in ``node.workerinput``. execnet calls
:meth:`TelemetryHub._receive` from its receiver thread: it only stamps the arrival time
and enqueues (anything heavier there delays every other message of that gateway).
:meth:`TelemetryHub.drain` moves the inbox into :attr:`TelemetryHub.workers` on the
controller's main thread.
"""

from __future__ import annotations

import queue
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CHANNEL_KEY",
    "INTERVAL_KEY",
    "MAX_KEPT_SAMPLES",
    "Sample",
    "TelemetryHub",
    "WorkerTelemetryState",
]

#: keys in ``node.workerinput``: the channel the worker sends its samples on, and how often
#: (set by the controller in ``pytest_configure_node``, read by :mod:`.telemetry`)
CHANNEL_KEY = "shadowfarm_telemetry"
INTERVAL_KEY = "shadowfarm_telemetry_interval"

#: samples kept for inspection (newest); per-worker state is kept whatever the count
MAX_KEPT_SAMPLES = 20_000
#: in-test samples per worker that make the live cpu share
IN_TEST_SAMPLES = 25


class _End:
    """execnet's end marker for our channels (a channel closed or its gateway died)."""


_END = _End()


@dataclass(frozen=True)
class Sample:
    """One worker measurement, with the controller's arrival time."""

    worker: str
    received_s: float
    data: Mapping[str, Any]

    @property
    def nodeid(self) -> str | None:
        value = self.data.get("nodeid")
        return value if isinstance(value, str) else None


@dataclass
class WorkerTelemetryState:
    """What the newest samples of one worker say."""

    worker: str
    samples: int = 0
    closed: bool = False
    last_received_s: float | None = None
    cpu_pct: float = 0.0
    rss_kb: int = 0
    peak_rss_kb: int = 0
    threads: int = 0
    read_bytes: int | None = None
    write_bytes: int | None = None
    nodeid: str | None = None
    phase: str | None = None
    #: sum of cpu_pct * interval between samples: CPU seconds seen while sampling
    cpu_s: float = 0.0
    #: CPU demand % of the newest samples taken while a test ran (I/O-boundness, live)
    in_test_pct: deque[float] = field(default_factory=lambda: deque(maxlen=IN_TEST_SAMPLES))
    _last_t: float | None = field(default=None, repr=False)

    def update(self, sample: Sample) -> None:
        data = sample.data
        self.samples += 1
        self.last_received_s = sample.received_s
        self.cpu_pct = _number(data.get("cpu_pct"), 0.0)
        self.rss_kb = int(_number(data.get("rss_kb"), 0))
        self.peak_rss_kb = max(self.peak_rss_kb, self.rss_kb)
        self.threads = int(_number(data.get("threads"), 0))
        for key in ("read_bytes", "write_bytes"):
            value = data.get(key)
            setattr(self, key, int(value) if isinstance(value, int) else None)
        self.nodeid = sample.nodeid
        if self.nodeid is not None and self.samples > 1:  # the first cpu_pct is a baseline
            # on Linux the demand (on a CPU or waiting for one), else the CPU it got
            demand = data.get("cpu_demand_pct")
            self.in_test_pct.append(_number(demand, self.cpu_pct))
        phase = data.get("phase")
        self.phase = phase if isinstance(phase, str) else None
        t = _number(data.get("t"), 0.0)
        if self._last_t is not None and t > self._last_t:
            self.cpu_s += self.cpu_pct / 100.0 * (t - self._last_t)
        self._last_t = t


def _number(value: object, default: float) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return default


class TelemetryHub:
    """Receives every worker's samples; :meth:`drain` on the main thread reads them."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._inbox: queue.SimpleQueue[tuple[float, str, object]] = queue.SimpleQueue()
        self.workers: dict[str, WorkerTelemetryState] = {}
        self.samples: deque[Sample] = deque(maxlen=MAX_KEPT_SAMPLES)
        self.received = 0

    def open(self, gateway: Any) -> Any:
        """A new channel on ``gateway`` whose messages land in this hub."""
        worker = str(gateway.id)
        channel = gateway.newchannel()
        self.workers.setdefault(worker, WorkerTelemetryState(worker))
        channel.setcallback(lambda item: self._receive(worker, item), endmarker=_END)
        return channel

    def _receive(self, worker: str, item: object) -> None:
        # execnet's receiver thread: stamp and enqueue, nothing else.
        self._inbox.put((self.clock(), worker, item))

    def drain(self) -> list[Sample]:
        """Move what arrived into the per-worker state; return the new samples."""
        new: list[Sample] = []
        while True:
            try:
                received, worker, item = self._inbox.get_nowait()
            except queue.Empty:
                break
            state = self.workers.setdefault(worker, WorkerTelemetryState(worker))
            if item is _END:
                state.closed = True
                continue
            if not isinstance(item, Mapping):
                continue  # not ours; never let a foreign message break the run
            sample = Sample(worker, received, item)
            state.update(sample)
            self.samples.append(sample)
            new.append(sample)
        self.received += len(new)
        return new

    def live(self) -> list[WorkerTelemetryState]:
        return [state for state in self.workers.values() if not state.closed]

    def busy_cores(self) -> float:
        """Cores the live workers used at their newest samples."""
        return sum(state.cpu_pct for state in self.live()) / 100.0

    def test_cpu_fraction(self, minimum: int = 3) -> float | None:
        """The workers' mean CPU demand share while running tests (None: too few samples)."""
        values = [pct for state in self.workers.values() for pct in state.in_test_pct]
        if len(values) < minimum:
            return None
        return min(1.0, sum(values) / len(values) / 100.0)
